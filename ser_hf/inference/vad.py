"""Voice activity: where a recording has speech, by silero-vad (a small neural detector shipped inside its wheel).

An emotion model trained on speech has no "no speech" class: given silence, hum or noise it still names an emotion,
often confidently. `predict`, the app and the timelines ask this detector first (`--vad true`, the default there):
a file without speech is reported as `NO_SPEECH` instead of an emotion, and a timeline's windows are placed over
the speech regions only. Files with speech are classified exactly as before (the detector never changes a score).

silero-vad reads 16 kHz audio in frames of 512 samples (32 ms) and keeps a recurrent state from frame to frame, so a
file is fed block by block (`file_speech_segments`, one decoded window in memory at a time) and gives the same
frames' probabilities as the whole array would. Measured here (2-core EPYC): about 0.33 s per minute of audio.

    segments = speech_segments(samples)                 # [(0.61, 2.43), (3.10, 5.02)] in seconds
    segments = file_speech_segments("talk.wav", 600.0)  # a long file, decoded block by block
"""

import functools
import threading

import numpy as np

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.windows import decode_windows, file_windows

NO_SPEECH = "no speech detected"
FRAME_SAMPLES = 512  # silero-vad's frame at 16 kHz
# silero-vad's own defaults, written out so that a reader sees what "speech" means here: a frame is speech above
# 0.5; a region needs 250 ms of it; a pause must last 100 ms to split two regions; each region is padded by 30 ms.
THRESHOLD = 0.5
MIN_SPEECH_MS = 250
MIN_SILENCE_MS = 100
SPEECH_PAD_MS = 30
# Long files are read in blocks of this many seconds: the decoder's buffers grow with the block (measured on a
# 10-minute file: 4 MB above the resident set with 10 s blocks, 20 MB with 60 s), the time does not.
BLOCK_SECONDS = 10.0

# The model is stateful (its recurrent state lives in the TorchScript module): one file at a time through it, also
# when the app serves several requests at once.
_MODEL_LOCK = threading.Lock()


@functools.cache
def _model():
    """The TorchScript silero-vad model from the wheel (no download), loaded once per process."""
    import torch

    # silero_vad.model calls torch.set_num_threads(1) at import: put the process's setting back, or every emotion
    # model run after the first VAD check would use one core.
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad

        return load_silero_vad(onnx=False)
    finally:
        torch.set_num_threads(threads)


def _probabilities(blocks):
    """Per-frame speech probabilities of the consecutive 16 kHz float32 `blocks` (one recurrent pass), and the
    number of samples they held."""
    import torch

    # One thread: each 32 ms frame is a handful of tiny operations, and two OpenMP threads spent longer waiting for
    # each other than computing, erratically so on a busy machine (measured on 30 s of audio: 0.19 s with one thread,
    # 0.2 to 15 s with two). With OpenMP the setting is this thread's own: another request's model keeps its threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _MODEL_LOCK, torch.inference_mode():
            model = _model()
            model.reset_states()
            return _feed(model, blocks)
    finally:
        torch.set_num_threads(threads)


def _feed(model, blocks):
    """The blocks' 512-sample frames through the model, its state carried across blocks (a partial frame waits for
    the next block); the file's last partial frame is zero-padded, as silero-vad pads it."""
    import torch

    probabilities, total, carry = [], 0, np.zeros(0, dtype=np.float32)
    for block in blocks:
        bad = int((~np.isfinite(block)).sum())
        if bad:  # the detector would read NaN as "no speech" and hide the broken file behind that answer
            raise ValueError(f"non-finite audio: {bad} NaN/Inf samples from {total / SAMPLE_RATE:.1f} s on (not "
                             "sent to the model: it would return NaN scores)")
        total += len(block)
        samples = np.concatenate([carry, np.asarray(block, dtype=np.float32)])
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        frames = torch.from_numpy(np.ascontiguousarray(samples[:whole]))
        for start in range(0, whole, FRAME_SAMPLES):
            probabilities.append(model(frames[start:start + FRAME_SAMPLES], SAMPLE_RATE).item())
        carry = samples[whole:]
    if len(carry):
        last = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        last[:len(carry)] = carry
        probabilities.append(model(torch.from_numpy(last), SAMPLE_RATE).item())
    return probabilities, total


def _segments(probabilities, total):
    from silero_vad import get_speech_timestamps_from_probs

    found = get_speech_timestamps_from_probs(
        probabilities, sampling_rate=SAMPLE_RATE, threshold=THRESHOLD, min_speech_duration_ms=MIN_SPEECH_MS,
        min_silence_duration_ms=MIN_SILENCE_MS, speech_pad_ms=SPEECH_PAD_MS, audio_length_samples=total)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in found]


def speech_segments(samples):
    """The speech regions of a 16 kHz mono float32 array.

    Args:
        samples: 1-D array at 16 kHz, values in [-1, 1].

    Returns:
        list of (start, end) in seconds, in time order; [] when there is no speech.

    Raises:
        ValueError: NaN or Inf samples (a broken file, not a silent one).
    """
    return _segments(*_probabilities([samples]))


def file_speech_segments(path, total_seconds, block_seconds=BLOCK_SECONDS):
    """The speech regions of an audio file, decoded as the pipeline decodes it, one block at a time.

    Args:
        path: audio file.
        total_seconds: its length (from the header or a scan), as `decode_windows` takes it.
        block_seconds: seconds decoded at once (memory stays bounded by one block).

    Returns:
        list of (start, end) in seconds, as `speech_segments`.
    """
    return _segments(*_probabilities(_consecutive_blocks(path, total_seconds, block_seconds)))


def _consecutive_blocks(path, total_seconds, block_seconds):
    """The file in consecutive, non-overlapping blocks. `decode_windows` moves its last window back to end at the
    file's end; the part of it already read is dropped here, so every sample is fed to the detector once."""
    if total_seconds <= block_seconds:
        yield from (samples for _, samples in file_windows(path, total_seconds, block_seconds, 0.0))
        return
    read = 0
    for start, samples in decode_windows(path, total_seconds, block_seconds, 0.0):
        fresh = samples[max(0, read - start):]
        read = max(read, start + len(samples))
        yield fresh


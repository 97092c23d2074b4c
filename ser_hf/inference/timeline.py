"""Emotion timelines: what the model hears, window by window, through a file.

The windows are the ones long-file inference uses (`chunk_starts`: full-length windows every `window - overlap`
seconds, the last one moved back to end at the file's end), only shorter by default (2 s every 1 s), so that a
minute of speech shows how the emotion moves rather than one average. Each window goes through the pipeline on
its own 16 kHz mono samples, exactly as `classify_file` sends a long file's windows.

Voice-activity gating is an energy threshold: a window whose RMS level is below `silence_dbfs` (default -50 dBFS,
about 0.3 % of full scale; the demo corpus' clips are -35 to -19 dBFS) is labelled "silence" and the model is not
run on it, so its scores are empty (None in JSON, blank in CSV). A model trained on speech has no "silence"
class and would otherwise put a confident-looking emotion on a pause.

With `vad=True` (predict's and the app's default, `--vad true`) the voice-activity detector (`ser_hf.inference.vad`)
places the windows: each speech region gets the same full-length windows (`chunk_starts` over the region; a region
shorter than one window is one window of its own length), and the time between regions is one row labelled
`NO_SPEECH` ("no speech detected", no scores, not classified). The energy gate still applies to the speech windows.
A file without speech is one `NO_SPEECH` row from start to end.

    classifier = load_classifier("outputs/demo")
    timeline = emotion_timeline(classifier, "talk.wav")
    write_timeline(timeline, "timelines/talk_timeline.csv"); write_timeline(timeline, "timelines/talk_timeline.json")
"""

import math
from pathlib import Path

import numpy as np

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.errors import UsageError
from ser_hf.inference.classify import min_input_samples, regression_outputs, triage
from ser_hf.inference.vad import NO_SPEECH, file_speech_segments
from ser_hf.inference.windows import check_chunking, chunk_starts, decode_ranges, decode_windows

SILENCE = "silence"
WINDOW_SECONDS = 2.0
OVERLAP_SECONDS = 1.0
SILENCE_DBFS = -50.0


def rms_dbfs(samples):
    """Root-mean-square level in dB relative to full scale (1.0); -inf for digital silence.

    Args:
        samples: 1-D float array in [-1, 1].

    Returns:
        float.
    """
    power = float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def model_labels(classifier):
    """The model's class names in id order (the column order of timeline files)."""
    id2label = classifier.model.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def emotion_timeline(classifier, path, window_seconds=WINDOW_SECONDS, overlap_seconds=OVERLAP_SECONDS,
                     silence_dbfs=SILENCE_DBFS, min_samples=None, vad=False):
    """Per-window predictions for one file, or the reason it cannot be classified.

    Args:
        classifier: an audio-classification pipeline (`load_classifier`).
        path: audio file.
        window_seconds: window length; a file no longer than this is one window.
        overlap_seconds: seconds shared by consecutive windows (hop = window - overlap).
        silence_dbfs: windows below this RMS level are labelled "silence" and not classified; None or -inf
            classifies all.
        min_samples: fewest 16 kHz samples to classify; default `min_input_samples(model config)`.
        vad: windows over the detector's speech regions, the time between them one `NO_SPEECH` row.

    Returns:
        dict: path, seconds, window_seconds, overlap_seconds, silence_dbfs, vad, labels (class names in id order),
        windows [{start, end, label, score, rms_dbfs, scores {label: probability} or None for silence and no
        speech}], error (None, or the same one-line reason `classify_file` gives).

    Raises:
        UsageError: a `--task dimensional` model, which has values and no emotion to put on a timeline.
    """
    path = str(path)
    if regression_outputs(classifier):
        raise UsageError("an emotion timeline shows each window's top emotion; a --task dimensional model has "
                         "arousal, dominance and valence values instead (predict them per file)")
    check_chunking(window_seconds, overlap_seconds)
    if silence_dbfs == -math.inf:  # no gate; stored as None since JSON has no -Infinity
        silence_dbfs = None
    timeline = {"path": path, "seconds": None, "window_seconds": window_seconds, "overlap_seconds": overlap_seconds,
                "silence_dbfs": silence_dbfs, "vad": bool(vad), "labels": model_labels(classifier), "windows": [],
                "error": None}
    if not Path(path).exists():
        return {**timeline, "error": "no such file or folder"}
    min_samples = min_samples or min_input_samples(classifier.model.config)
    kind, found = triage(path, window_seconds, min_samples)
    if kind == "error":
        return {**timeline, "seconds": found["seconds"], "error": found["error"]}
    timeline["seconds"] = round(float(found), 3)
    if vad:
        return _speech_timeline(classifier, path, found, timeline, min_samples)
    for start, samples in decode_windows(path, found, window_seconds, overlap_seconds):
        begin, end = start / SAMPLE_RATE, (start + len(samples)) / SAMPLE_RATE
        bad = int((~np.isfinite(samples)).sum())
        if bad:
            return {**timeline, "windows": [], "error": f"non-finite audio: {bad} NaN/Inf samples in {begin:.1f}-"
                                                        f"{end:.1f} s (not sent to the model: it would return NaN scores)"}
        if len(samples) < min_samples:  # header longer than the data: nothing more to classify
            continue
        timeline["windows"].append(_window(classifier, samples, begin, end, silence_dbfs))
    if not timeline["windows"]:
        return {**timeline, "error": f"too short (no window of at least {min_samples} samples at 16 kHz)"}
    return timeline


def speech_windows(segments, seconds, window_seconds, overlap_seconds):
    """The timeline's windows with the detector: full-length windows over each speech region, gaps between.

    Args:
        segments: speech regions [(start, end), ...] in seconds (`ser_hf.inference.vad.speech_segments`).
        seconds: the file's length.
        window_seconds, overlap_seconds: as in `emotion_timeline`.

    Returns:
        list of (start, end, is_speech) in seconds, in time order, covering 0..seconds.
    """
    window_n = round(window_seconds * SAMPLE_RATE)
    hop_n = round((window_seconds - overlap_seconds) * SAMPLE_RATE)
    total_n, placed, cursor = round(seconds * SAMPLE_RATE), [], 0
    for begin, end in segments:
        begin_n, end_n = max(round(begin * SAMPLE_RATE), cursor), min(round(end * SAMPLE_RATE), total_n)
        if end_n <= begin_n:
            continue
        if begin_n > cursor:
            placed.append((cursor, begin_n, False))
        placed += [(begin_n + s, begin_n + s + min(window_n, end_n - begin_n), True)
                   for s in chunk_starts(end_n - begin_n, window_n, hop_n)]
        cursor = end_n
    if total_n > cursor:
        placed.append((cursor, total_n, False))
    return [(a / SAMPLE_RATE, b / SAMPLE_RATE, speech) for a, b, speech in placed]


def _speech_timeline(classifier, path, seconds, timeline, min_samples):
    try:
        segments = file_speech_segments(path, seconds)
    except ValueError as err:  # NaN/Inf samples: the reason, as the windows would give it
        return {**timeline, "error": str(err)}
    placed = speech_windows(segments, seconds, timeline["window_seconds"], timeline["overlap_seconds"])
    decoded = decode_ranges(path, [(a, b) for a, b, speech in placed if speech])
    for begin, end, speech in placed:
        samples = next(decoded) if speech else None
        if samples is None or len(samples) < min_samples:  # a gap, or a region too short for the model
            timeline["windows"].append({"start": round(begin, 3), "end": round(end, 3), "label": NO_SPEECH,
                                        "score": None, "rms_dbfs": None, "scores": None})
        else:
            timeline["windows"].append(_window(classifier, samples, begin, end, timeline["silence_dbfs"]))
    return timeline


def _window(classifier, samples, begin, end, silence_dbfs):
    level = rms_dbfs(samples)
    row = {"start": round(begin, 3), "end": round(end, 3), "label": SILENCE, "score": None,
           "rms_dbfs": round(level, 1) if math.isfinite(level) else None, "scores": None}
    if silence_dbfs is not None and level < silence_dbfs:
        return row
    # The sampling rate already matches, so the pipeline skips resampling (which would need torchaudio).
    scores = {s["label"]: float(s["score"]) for s in classifier({"raw": samples, "sampling_rate": SAMPLE_RATE},
                                                                 top_k=None)}
    label = max(scores, key=scores.get)
    return {**row, "label": label, "score": scores[label], "scores": scores}


def label_changes(timeline):
    """The top labels in time order with consecutive repeats merged (e.g. ["sad", "silence", "angry"]).

    Args:
        timeline: `emotion_timeline` output.

    Returns:
        list of str.
    """
    merged = []
    for window in timeline["windows"]:
        if not merged or merged[-1] != window["label"]:
            merged.append(window["label"])
    return merged



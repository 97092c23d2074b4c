"""The one windowed decode of long files, shared by prediction, intensity and timelines.

A file is decoded as the pipeline decodes it (`ffmpeg -ac 1 -ar 16000`, through torchcodec's libswresample: a
whole-file decode is bit-identical, including the (L+R)/sqrt(2) downmix, which is not a plain mean). Long files are
read window by window, so memory stays bounded by one window whatever the file's length. Windows of 16 kHz sources
are exact slices; for other rates each range restarts the resampler, which can shift a window by about a
millisecond: immaterial for a window's emotion.
"""

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.errors import UsageError


def chunk_starts(total_samples, chunk_samples, hop_samples):
    """Start offsets (in samples) of the windows that cover a file.

    Windows start every `hop_samples`; the last one is moved back to end at the file's end, so every
    window is full length (each gets the same weight and none is a sliver too short for the model).

    Args:
        total_samples: the file's length.
        chunk_samples: window length.
        hop_samples: distance between window starts.

    Returns:
        list of int, [0] when the file fits in one window.
    """
    if total_samples <= chunk_samples:
        return [0]
    n = 1 + -(-(total_samples - chunk_samples) // hop_samples)  # ceil without float rounding
    return [i * hop_samples for i in range(n - 1)] + [total_samples - chunk_samples]


def check_chunking(chunk_seconds, chunk_overlap):
    """Refuse a window setting that cannot cover a file: the overlap must be shorter than the window.

    Args:
        chunk_seconds: window length in seconds.
        chunk_overlap: seconds shared by consecutive windows.

    Raises:
        UsageError: unless 0 <= chunk_overlap < chunk_seconds, with windows at least one sample apart.
    """
    # Windows closer than one sample would round to a hop of 0 and never advance through the file.
    if not 0 <= chunk_overlap < chunk_seconds or round((chunk_seconds - chunk_overlap) * SAMPLE_RATE) < 1:
        raise UsageError(f"need 0 <= chunk_overlap < chunk_seconds (at least one sample apart), got {chunk_overlap} "
                         f"and {chunk_seconds}")


def _decoder(path):
    from torchcodec.decoders import AudioDecoder  # imported here: the module imports without torchcodec

    return AudioDecoder(str(path), sample_rate=SAMPLE_RATE, num_channels=1)


def decode_whole(path):
    """A whole file as the pipeline reads it: 16 kHz mono float32 samples (1-D array)."""
    return _decoder(path).get_all_samples().data.numpy()[0]


def decode_windows(path, total_seconds, window_seconds, overlap_seconds):
    """Each window of a file, decoded one at a time: full-length windows every `window - overlap` seconds, the last
    one moved back to end at the file's end (`chunk_starts`).

    Args:
        path: audio file.
        total_seconds: its length (from the header or a scan).
        window_seconds: window length.
        overlap_seconds: seconds shared by consecutive windows.

    Yields:
        (start sample, 1-D 16 kHz mono float32 samples); a window may come back shorter when the header promised
        more audio than the file holds.
    """
    decoder = _decoder(path)
    window_n = round(window_seconds * SAMPLE_RATE)
    hop_n = round((window_seconds - overlap_seconds) * SAMPLE_RATE)
    for start in chunk_starts(round(total_seconds * SAMPLE_RATE), window_n, hop_n):
        begin, end = start / SAMPLE_RATE, min((start + window_n) / SAMPLE_RATE, total_seconds)
        yield start, decoder.get_samples_played_in_range(begin, end).data.numpy()[0]


def file_windows(path, total_seconds, window_seconds, overlap_seconds):
    """The whole file as one window when it is no longer than `window_seconds`, else `decode_windows`.

    Yields:
        (start sample, samples), as `decode_windows`.
    """
    if total_seconds <= window_seconds:
        yield 0, decode_whole(path)
    else:
        yield from decode_windows(path, total_seconds, window_seconds, overlap_seconds)


def decode_ranges(path, ranges):
    """The 16 kHz mono samples of each (begin, end) range of a file, in seconds, decoded one range at a time (the
    timeline's windows over speech regions, which `chunk_starts`' regular grid does not give).

    Yields:
        1-D 16 kHz mono float32 samples per range, in the order given.
    """
    decoder = _decoder(path)
    for begin, end in ranges:
        yield decoder.get_samples_played_in_range(begin, end).data.numpy()[0]


def decoded_seconds(path, limit_seconds):
    """How many seconds of audio a file really holds, decoding at most its first `limit_seconds` (+ one second).

    A header can be missing or lie (a stream with no duration, a hand-made header); a server that must refuse long
    files decodes this far and no further, so memory stays bounded whatever the file claims.

    Returns:
        float: the decoded length, at most about `limit_seconds + 1`.
    """
    return len(_decoder(path).get_samples_played_in_range(0.0, limit_seconds + 1.0).data.numpy()[0]) / SAMPLE_RATE

"""What the app bounds, so that a public Space anyone uploads to stays up: upload size, recording length, the queue.

The defaults fit a free CPU Space (2 vCPU, 16 GB): a 60 s recording costs a wav2vec2-base model about 10-30 s of
CPU there (its whole-file windows and its timeline), one request runs at a time (a second one would only share the
same two cores), and 16 more may wait; the 17th is told the queue is full instead of waiting minutes. 25 MB holds
60 s of 48 kHz stereo float WAV (23 MB). A longer recording is refused from its header, before it is decoded: a
2-hour file costs a header read, not 460 MB of samples per copy.

    refusal = duration_refusal("upload.wav", max_seconds=60)   # None, or the one line the app shows
"""

from pathlib import Path

from ser_hf.data.audio import audio_duration_seconds
from ser_hf.inference.windows import decoded_seconds

MAX_DURATION_S = 60.0
MAX_UPLOAD_MB = 25.0
QUEUE_SIZE = 16
CONCURRENCY = 1
# An answered upload is deleted when its request ends (demo_app); Gradio's other copies (uploads no request answered,
# the figures it served) this long after they were made, checked every minute. It must outlast a wait in the queue,
# or a waiting upload is deleted before its turn: 16 waiting x 30 s = 8 min < 15 min.
CACHE_SECONDS = 900


def upload_bytes(max_upload_mb):
    """`--max_upload_mb` as the byte count Gradio's `launch(max_file_size=...)` takes."""
    return int(max_upload_mb * 1024 * 1024)


def cache_schedule(cache_seconds):
    """Gradio's `delete_cache=(frequency, age)`: files older than `cache_seconds`, looked for every minute (or more
    often when the age is shorter)."""
    return (max(1, min(60, int(cache_seconds))), int(cache_seconds))


def format_duration(seconds):
    """A length as people say it: "2 h 0 min", "3 min 5 s", "42.5 s"."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{seconds:.1f} s"


def duration_refusal(path, max_seconds):
    """The line the app shows instead of a result when a recording is longer than it takes, else None.

    The header's duration decides without decoding; a header that says nothing (or claims a short file) is checked
    by decoding at most `max_seconds` + 1 s, so a file that lies about its length is bounded too. An unreadable
    file passes: the classification's own check says why it cannot be read.

    Args:
        path: the uploaded file.
        max_seconds: the longest recording the app takes (`--max_duration_s`).

    Returns:
        str (Markdown, one line) or None.
    """
    name = Path(path).name
    try:
        seconds = audio_duration_seconds(path)
        length = f"is {format_duration(seconds)} long"
        if seconds <= max_seconds:
            # Half a second of slack: a decoder may hand back a few more samples than the header counts.
            seconds = decoded_seconds(path, max_seconds) - 0.5
            length = f"is longer than {max_seconds:g} s"
    except Exception:  # noqa: BLE001 - not audio, empty, truncated: `classify_file` gives the reason
        return None
    if seconds <= max_seconds:
        return None
    return (f"**{name} is too long**: this recording {length}; this app takes up to {max_seconds:g} s "
            "(`ser-hf app MODEL --max_duration_s SECONDS` serves longer ones)")

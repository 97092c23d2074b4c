"""The base every layer shares: the exception a user's mistake raises, and the short texts messages share.

Nothing here imports torch or transformers: raising a `UsageError` must not cost the seconds a deep-learning
import takes (`ser-hf <command> --help` and every typo are answered before any of that is imported).
"""

_SHOW = 10  # how many offending items a message lists before "... and N more"

# Said wherever speakers may cross splits: by the manifest loaders and by the stratified split.
SPEAKER_LEAK_WARNING = (
    "Results may leak speakers: a speaker whose clips are in both training and evaluation makes the model "
    "look better than it is on new voices (it partly measures speaker recognition)."
)


class UsageError(ValueError):
    """A mistake in the arguments, the config or the data the user pointed at: the commands print it as one line
    and exit with code 2 (`ser_hf.console.command`)."""


class WriteFailed(OSError):
    """A write of ours ran out of space (ENOSPC, EDQUOT) or hit an I/O error: the commands print it as one line,
    naming what was being written, where, and how to go on, and exit with code 1 (`ser_hf.console.command`)."""


# errno values that mean the storage, not our code, failed a write: full, over quota, or an I/O error.
STORAGE_ERRNOS = (28, 122, 5)  # ENOSPC, EDQUOT (Linux), EIO


def sample_text(items, n: int = _SHOW) -> str:
    """The first `n` items joined with ", ", then "... and N more": error messages stay short on big corpora.

    Args:
        items: anything printable.
        n: how many to show.

    Returns:
        e.g. "a.wav, b.wav ... and 12 more".
    """
    items = list(items)
    text = ", ".join(str(i) for i in items[:n])
    return text + (f" ... and {len(items) - n} more" if len(items) > n else "")


def count(n, noun, plural=None):
    """"1 file", "3 files": a count with its noun in the right number."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"

"""Writing files so that a full disk or a killed process never leaves a half-written one, and says so in one line.

Every file a run writes in place (results, predictions, reports, a study's tables, ONNX exports) goes through
`atomic_write` or `atomic_output`: the bytes go to a hidden temporary beside the target, which replaces the target
only once complete (`os.replace` is atomic on one filesystem), so a reader sees the old file or the new one, never
half of either. When the storage fails (full, over quota, an I/O error) the temporary is removed and the failure
becomes a `WriteFailed` naming the file, which the commands print as one line with exit code 1.

Like `errors`, nothing here imports torch: the checks run before any model is loaded.
"""

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from ser_hf.errors import STORAGE_ERRNOS, UsageError, WriteFailed

# What a failed write says when it does not carry an errno: PyTorch's zip writer ("unexpected pos 8448 vs 8342",
# "PytorchStreamWriter failed writing file data/0: file write failed"), safetensors' Rust error
# ("IoError(Os { code: 28, kind: StorageFull, ... })") and numpy's short write ("48000 requested and 32704 written").
_STORAGE_TEXTS = ("no space left on device", "storagefull", "disk quota exceeded", "unexpected pos",
                  "file write failed", "requested and", "input/output error")


def mb(size) -> str:
    """Bytes as megabytes (MiB) for a message: "1,220" from 10 MB up, "0.2" below."""
    return f"{size / 2**20:,.0f}" if size >= 10 * 2**20 else f"{size / 2**20:.1f}"


def _chain(err):
    """`err` and the exceptions it was raised from or during, each once."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_storage_failure(err: BaseException) -> bool:
    """Whether `err`, or an exception it was raised from, is the storage failing a write (not a bug of ours).

    Args:
        err: any exception.

    Returns:
        True for an OSError with errno ENOSPC, EDQUOT or EIO anywhere in the chain, or an error whose text is what
        PyTorch, safetensors or numpy say when a write came up short.
    """
    for link in _chain(err):
        if isinstance(link, OSError) and link.errno in STORAGE_ERRNOS:
            return True
        if isinstance(link, (OSError, RuntimeError)) or type(link).__name__ == "SafetensorError":
            if any(t in str(link).lower() for t in _STORAGE_TEXTS):
                return True
    return False


def storage_cause(err: BaseException, where=None) -> str:
    """What the storage said, for a message: "No space left on device: 'out/trainer_state.json'" when an OSError in
    the chain names it, the same words when only a library's text holds them or (PyTorch's "unexpected pos" says
    neither) when `where` has less than 1 MB free, else "the disk is full or failing"."""
    for link in _chain(err):
        if isinstance(link, OSError) and link.errno in STORAGE_ERRNOS:
            return os.strerror(link.errno) + (f": {link.filename!r}" if link.filename else "")
    text = " ".join(str(link).lower() for link in _chain(err))
    for errno_value in STORAGE_ERRNOS:
        if os.strerror(errno_value).lower() in text or (errno_value == 28 and "storagefull" in text):
            return os.strerror(errno_value)
    if where is not None and free_bytes(where) < 2**20:
        return os.strerror(28)
    return "the disk is full or failing"


def free_bytes(folder) -> int:
    """Free bytes on the filesystem that holds `folder` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def require_free_space(folder, needed, what, fixes):
    """Refuse, before anything is written, a write the folder has no room for (5 % and 50 MB to spare).

    Args:
        folder: where the bytes will go.
        needed: the estimated bytes.
        what: the thing written, for the message ("the audio cache for 1440 clips").
        fixes: what the user can do, for the message ("free space there, or set --audio_cache false").

    Raises:
        UsageError: too little space; names the folder, the space needed and free, and the fixes.
    """
    free = free_bytes(folder)
    if needed * 1.05 + 50 * 2**20 > free:
        raise UsageError(f"not enough free space in {folder} for {what}: about {mb(needed)} MB needed, {mb(free)} MB "
                         f"free. {fixes[:1].upper()}{fixes[1:]}")


def write_failed(err, what, where, next_step) -> WriteFailed:
    """The one-line `WriteFailed` for a storage failure while writing `what` at `where`.

    Args:
        err: the OSError (or PyTorch / safetensors error) the write raised.
        what: what was being written ("checkpoint-40").
        where: the file or folder.
        next_step: how to go on once space is freed ("rerun with --resume true").
    """
    cause = storage_cause(err, where).split(": ", 1)[0]  # the file is named by `what` and `where`
    return WriteFailed(f"writing {what} in {where} failed: {cause} ({mb(free_bytes(where))} MB free). "
                       f"Free space and {next_step}")


def default_file_mode():
    """0o666 less the process umask: the mode `open(path, "w")` gives a new file."""
    try:  # Linux states the umask without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # elsewhere, read it the only portable way and put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_sibling(target: Path) -> Path:
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    return Path(tmp)


@contextlib.contextmanager
def atomic_output(path, next_step="rerun the same command"):
    """A temporary path beside `path` for a library that writes by file name (matplotlib, torch.onnx, onnxruntime);
    it replaces `path` when the block ends without an error and is removed when it does not.

    Args:
        path: the final file.
        next_step: what the user does after freeing space, for a full-disk message.

    Yields:
        The temporary `Path` to write (it exists, empty, with the mode a new file gets).

    Raises:
        WriteFailed: the storage failed while writing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    os.chmod(tmp, default_file_mode())  # mkstemp makes it 0600; the result gets the mode a plain open() gives
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception) and is_storage_failure(err):
            raise write_failed(err, path.name, path.parent, next_step) from err
        raise


@contextlib.contextmanager
def atomic_write(path, mode="w", next_step="rerun the same command", **open_kwargs):
    """`open(path, mode)` that replaces `path` only with a complete file (see the module's docstring).

    Args:
        path: the final file.
        mode: "w" or "wb".
        next_step: what the user does after freeing space, for a full-disk message.
        **open_kwargs: passed to `open` (newline, encoding).

    Yields:
        The open file handle.

    Raises:
        WriteFailed: the storage failed while writing.
    """
    with atomic_output(path, next_step) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())  # the data is on disk before the name points at it: a power cut keeps the old file


def write_text_atomic(path, text, next_step="rerun the same command"):
    """`Path(path).write_text(text)` through `atomic_write`."""
    with atomic_write(path, "w", next_step, encoding="utf-8") as handle:
        handle.write(text)


STALE_AFTER_S = 3600  # a temporary this old belongs to a killed writer: ours rename theirs within seconds or minutes


def remove_stale_temporaries(folder, now=None):
    """Remove the temporaries `atomic_write` left in `folder` when its process was killed (older than an hour).

    Args:
        folder: a folder we write into (a run's output dir).
        now: the time to compare modification times with (default: now).

    Returns:
        The names removed.
    """
    folder, now = Path(folder), time.time() if now is None else now
    removed = []
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            if tmp.is_file() and now - tmp.stat().st_mtime > STALE_AFTER_S:
                tmp.unlink()
                removed.append(tmp.name)
    return sorted(removed)

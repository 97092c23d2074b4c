"""Output-dir protection: one run per output dir, and no silent training over a finished or interrupted run."""

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from ser_hf.errors import UsageError
from ser_hf.training.checkpoints import (
    CHECKPOINT_RE,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    latest_intact_checkpoint,
)

logger = logging.getLogger(__name__)

LOCK_NAME = ".ser_hf.lock"


class OutputDirBusy(UsageError, RuntimeError):
    """Another live run (or a run on another host) holds the output dir's lock."""


class FinishedRunExists(UsageError, FileExistsError):
    """The output dir holds a finished run and the user asked neither to overwrite nor to resume it."""


def finished_run(output_dir):
    """Whether `output_dir` holds a finished run: final weights and config.json at its top level.

    Args:
        output_dir: the run's output dir.

    Returns:
        True when `model.safetensors` (or a sharded index) and `config.json` are there.
    """
    folder = Path(output_dir)
    weights = (folder / SAFE_WEIGHTS_NAME).is_file() or (folder / SAFE_WEIGHTS_INDEX_NAME).is_file()
    return weights and (folder / "config.json").is_file()


class InterruptedRunExists(UsageError, FileExistsError):
    """The output dir holds an interrupted run's checkpoints and the user asked neither to resume nor to overwrite."""


def _step_of(checkpoint):
    """'step 42 of 60' from a checkpoint's trainer_state.json, or its folder name when that is unreadable."""
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        return f"step {state['global_step']} of {state['max_steps']}"
    except (OSError, ValueError, KeyError):
        return Path(checkpoint).name


def check_output_dir(output_dir, overwrite, resume):
    """Refuse to train over a finished or interrupted run unless asked to; with `overwrite`, say what goes.

    A rerun of an interrupted command without --resume would start from step 0 and let the Trainer's checkpoint
    rotation delete the interrupted run's checkpoints: that is refused, as training over a finished run is.

    Args:
        output_dir: the run's output dir.
        overwrite: the user asked to start over (--overwrite_output_dir true): the earlier run's checkpoints are
            removed, with a warning naming them, so that the new run's checkpoints are the only ones there.
        resume: the user asked to resume (any truthy `resume_from_checkpoint`).

    Raises:
        FinishedRunExists: `output_dir` holds a finished run and neither flag is set.
        InterruptedRunExists: `output_dir` holds an intact checkpoint and neither flag is set.
    """
    if resume:
        return
    folder = Path(output_dir)
    old = sorted((p for p in folder.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)),
                 key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1))) if folder.is_dir() else []
    if overwrite:
        if old:
            logger.warning("Starting over in %s (--overwrite_output_dir true): removing the earlier run's %s",
                           folder, ", ".join(p.name for p in old))
            for checkpoint in old:
                shutil.rmtree(checkpoint)
        return
    if finished_run(folder):
        raise FinishedRunExists(
            f"{output_dir} already holds a finished run (model.safetensors and config.json). "
            "Pass --overwrite_output_dir true to train over it, --resume true to continue "
            "from its newest intact checkpoint, or choose another --output_dir."
        )
    checkpoint = latest_intact_checkpoint(folder) if old else None
    if checkpoint is not None:
        raise InterruptedRunExists(
            f"{output_dir} holds an interrupted run ({Path(checkpoint).name}, {_step_of(checkpoint)}): rerun with "
            "--resume true to continue it, --overwrite_output_dir true to start over (its checkpoints are then "
            "removed), or choose another --output_dir."
        )


def _process_start(pid):
    """The kernel's start time of `pid` in clock ticks (Linux /proc), or None where unknown.

    Stored in the lock so that a dead run's pid, reused later by an unrelated process, is not
    mistaken for the run.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid, start=None):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OverflowError:
        return False
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused
    return True


class OutputDirLock:
    """Keeps two runs on one host from writing into the same output dir.

    Entering creates `output_dir/.ser_hf.lock` atomically (O_CREAT | O_EXCL) holding the pid, its start
    time, the hostname and the start time of the run; leaving removes it. A lock left by a process that no
    longer exists (killed with SIGKILL, a crashed node) is taken over with a warning, so a lock is never
    held forever. A lock written on another host cannot be checked and is refused with instructions.

    Use it on the main process only (`trainer.is_world_process_zero()` / `training_args.should_save`): the
    other processes of the same run would otherwise see the main one as a competitor. `enabled=False`
    makes it a no-op for them.

    Args:
        output_dir: the run's output dir (created if missing).
        enabled: False for a no-op (non-main processes).

    Raises:
        OutputDirBusy: on entering, when another live run holds the lock or it was written on another host.
    """

    def __init__(self, output_dir, enabled=True):
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_NAME
        self.enabled = enabled
        self._held = False

    def _create(self):
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        info = {"pid": os.getpid(), "pid_start": _process_start(os.getpid()), "hostname": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)

    def _read(self):
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # half-written by a process killed between create and write

    def acquire(self):
        """Take the lock (see the class docstring)."""
        if not self.enabled or self._held:
            return self
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                self._create()
                self._held = True
                return self
            except FileExistsError:
                pass
            info = self._read()
            if info is None:
                continue  # released between our two calls: try again
            pid, host = info.get("pid"), info.get("hostname")
            if host is not None and host != socket.gethostname():
                raise OutputDirBusy(
                    f"{self.path} was written by pid {pid} on host {host}, which cannot be checked from here. "
                    f"If no run is writing into {self.output_dir} any more, delete {self.path} and start again."
                )
            if isinstance(pid, int) and _pid_alive(pid, info.get("pid_start")):
                raise OutputDirBusy(
                    f"Another run (pid {pid} on {host}, started {info.get('started')}) is writing into this "
                    f"output dir {self.output_dir}: lock file {self.path}. Wait for it, choose another "
                    "--output_dir, or stop that process."
                )
            logger.warning("Taking over %s left by pid %s (no longer running, started %s)",
                           self.path, pid, info.get("started"))
            # Unlink only the lock we judged stale: another run taking it over at the same moment may have
            # replaced it (a remaining race of microseconds between this read and the unlink).
            if self._read() == info:
                self.path.unlink(missing_ok=True)
        raise RuntimeError(f"Could not take {self.path}: another run keeps creating it")

    def release(self):
        """Remove the lock if this object holds it."""
        if self._held:
            info = self._read()
            if info and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

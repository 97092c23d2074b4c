"""Runs that survive: checked resumption, output-dir protection and an atomic final save.

The Trainer resumes from the highest-numbered `checkpoint-*` without looking inside it: a truncated
`model.safetensors` or `optimizer.pt` (a run killed while saving, a full disk) crashes the resume, and a
missing `optimizer.pt` or `rng_state.pth` resumes silently with a fresh optimizer / RNG. This module checks
a checkpoint before it is used, picks the newest intact one, keeps two runs from writing into the same
output dir, refuses to silently train over a finished run, and writes the final model so that a crash
while writing it leaves the previous model files in place.

What transformers 5.23's Trainer writes into `checkpoint-N` (CPU, one process, checked):
`model.safetensors`, `config.json`, `optimizer.pt`, `scheduler.pt`, `rng_state.pth`, `trainer_state.json`,
`training_args.bin`, plus `preprocessor_config.json` when a processing_class is given. Also `scaler.pt` with
fp16 on a GPU, `rng_state_{rank}.pth` instead of `rng_state.pth` with several processes, and
`model.safetensors.index.json` + `model-0000x-of-0000y.safetensors` for models above the shard size.
`optimizer.pt`, `scheduler.pt`, `rng_state*.pth` and `scaler.pt` are `torch.save` zip archives.
"""

import json
import logging
import os
import re
import shutil
import socket
import struct
import time
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
LOCK_NAME = ".ser_hf.lock"
FINAL_TMP_PREFIX = ".final-tmp-"

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"  # the pre-safetensors format: still accepted if someone resumes an old run
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
# Files of a finished model that a newer final save must not leave behind from an older one (an old index
# beside a new single file would make from_pretrained load the old shards).
_STALE_WEIGHT_PATTERNS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
                          "pytorch_model.bin.index.json")


# --------------------------------------------------------------------------------------------------------
# Checking a checkpoint
# --------------------------------------------------------------------------------------------------------

def _safetensors_problem(path, thorough=False):
    """Why a safetensors file is unusable, or None.

    The header states where every tensor's bytes end; a complete file is exactly
    8 + header length + end of the last tensor bytes long. Comparing that with the file size detects
    truncation without reading (or mmapping) the weights.
    """
    name = path.name
    size = path.stat().st_size
    if size < 8:
        return f"{name} is truncated ({size} bytes, no safetensors header)"
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if 8 + header_len > size:
            return f"{name} is truncated (header declares {header_len} bytes, file has {size})"
        try:
            header = json.loads(f.read(header_len))
            data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError):
            return f"{name} has an unreadable safetensors header"
    expected = 8 + header_len + data_end
    if size < expected:
        return f"{name} is truncated ({size} of {expected} bytes)"
    if size > expected:
        return f"{name} has {size - expected} bytes after its last tensor (corrupt)"
    if thorough:
        try:
            import torch
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as sf:
                for key in sf.keys():
                    tensor = sf.get_tensor(key)
                    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                        return f"{name}: tensor {key} holds NaN or inf"
        except Exception as err:  # noqa: BLE001 - any failure to read is the answer
            return f"{name} cannot be read ({err})"
    return None


def _torch_zip_problem(path, thorough=False):
    """Why a `torch.save` file is unusable, or None.

    `torch.save` writes a zip archive whose central directory comes last, so a file cut short anywhere
    lacks it: opening it with `zipfile.ZipFile` (which reads only the end of the file) detects truncation
    without loading the tensors. Member entries must also lie within the file. `thorough` additionally
    checks every member's CRC (reads the whole file).
    """
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not any(info.filename.endswith("data.pkl") for info in infos):
                return f"{name} is not a torch.save archive (no data.pkl)"
            size = path.stat().st_size
            if any(info.header_offset + info.compress_size > size for info in infos):
                return f"{name} is truncated (archive members extend past the end of the file)"
            if thorough:
                bad = archive.testzip()
                if bad is not None:
                    return f"{name} is corrupt (CRC mismatch in {bad})"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return f"{name} is truncated (not a complete zip archive)"
    return None


def _weights_problems(folder, thorough):
    if (folder / SAFE_WEIGHTS_NAME).is_file():
        problem = _safetensors_problem(folder / SAFE_WEIGHTS_NAME, thorough)
        return [problem] if problem else []
    for index_name, check in ((SAFE_WEIGHTS_INDEX_NAME, _safetensors_problem), (WEIGHTS_INDEX_NAME, _torch_zip_problem)):
        if (folder / index_name).is_file():
            try:
                shards = sorted(set(json.loads((folder / index_name).read_text())["weight_map"].values()))
            except (ValueError, KeyError, AttributeError, OSError):
                return [f"{index_name} is not a valid weight index"]
            problems = []
            for shard in shards:
                if not (folder / shard).is_file():
                    problems.append(f"{shard} is missing (listed in {index_name})")
                elif problem := check(folder / shard, thorough):
                    problems.append(problem)
            return problems
    if (folder / WEIGHTS_NAME).is_file():
        problem = _torch_zip_problem(folder / WEIGHTS_NAME, thorough)
        return [problem] if problem else []
    return [f"model weights are missing (no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME})"]


def _trainer_state_problem(folder):
    path = folder / "trainer_state.json"
    if not path.is_file():
        return "trainer_state.json is missing"
    try:
        state = json.loads(path.read_text())
    except (ValueError, OSError):
        return "trainer_state.json is not valid JSON (truncated?)"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return "trainer_state.json has no global_step"
    return None


def checkpoint_problems(path, thorough=False):
    """What is wrong with one `checkpoint-N` folder.

    Required: the weights (`model.safetensors`, or an index and all its shards), `trainer_state.json`
    (valid JSON with `global_step`), `optimizer.pt`, `scheduler.pt` and the RNG state (`rng_state.pth`, or
    `rng_state_{rank}.pth` from a multi-process run); `scaler.pt` and `config.json` are checked when present.
    Truncation is found from the file headers alone (see `_safetensors_problem`, `_torch_zip_problem`), so
    a check costs a few small reads whatever the model size.

    A checkpoint written with `save_only_model=True` has no optimizer or RNG state and is reported broken
    on purpose: resuming from it would silently restart the optimizer.

    Args:
        path: the checkpoint folder.
        thorough: also read every byte: zip CRCs, and every weight tensor for NaN/inf (slow for big models).

    Returns:
        Human-readable problems, one per broken or missing file; [] when the checkpoint is intact.
    """
    folder = Path(path)
    if not folder.is_dir():
        return [f"{folder} is not a directory"]
    problems = _weights_problems(folder, thorough)
    if problem := _trainer_state_problem(folder):
        problems.append(problem)
    for name in ("optimizer.pt", "scheduler.pt"):
        if not (folder / name).is_file():
            problems.append(f"{name} is missing")
        elif problem := _torch_zip_problem(folder / name, thorough):
            problems.append(problem)
    rng_files = sorted(folder.glob("rng_state*.pth"))
    if not rng_files:
        problems.append("rng_state.pth is missing")
    problems += [p for f in rng_files if (p := _torch_zip_problem(f, thorough))]
    if (folder / "scaler.pt").is_file() and (problem := _torch_zip_problem(folder / "scaler.pt", thorough)):
        problems.append(problem)
    if (folder / "config.json").is_file():
        try:
            json.loads((folder / "config.json").read_text())
        except (ValueError, OSError):
            problems.append("config.json is not valid JSON (truncated?)")
    return problems


def _checkpoints_newest_first(output_dir):
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_intact_checkpoint(output_dir, thorough=False):
    """The newest (by step number) intact checkpoint in `output_dir`.

    Every newer checkpoint that is skipped is logged as a WARNING naming what is wrong with it, so a
    resume that falls back is never silent.

    Args:
        output_dir: the run's output dir holding `checkpoint-N` folders.
        thorough: passed to `checkpoint_problems`.

    Returns:
        The checkpoint's path as a string, or None when there is no intact checkpoint.
    """
    skipped = []
    for checkpoint in _checkpoints_newest_first(output_dir):
        problems = checkpoint_problems(checkpoint, thorough)
        if not problems:
            for name, reasons in skipped:
                logger.warning("%s: %s; resuming from %s instead", name, "; ".join(reasons), checkpoint.name)
            return str(checkpoint)
        skipped.append((checkpoint.name, problems))
    for name, reasons in skipped:
        logger.warning("%s: %s; no intact checkpoint left, training from scratch", name, "; ".join(reasons))
    return None


def resolve_resume(resume_from_checkpoint, output_dir, thorough=False):
    """Turn the `resume_from_checkpoint` argument into a checked checkpoint path.

    Args:
        resume_from_checkpoint: "auto", "last" or True: the newest intact checkpoint of `output_dir` (None
            if there is none); a path: that checkpoint, which must be intact; None, False or "": no resume.
        output_dir: the run's output dir.
        thorough: passed to `checkpoint_problems`.

    Returns:
        A checkpoint path for `trainer.train(resume_from_checkpoint=...)`, or None to start from scratch.

    Raises:
        ValueError: an explicitly named checkpoint is missing or broken (the user asked for that one, so
            falling back to another would be a surprise).
    """
    if resume_from_checkpoint is None or resume_from_checkpoint is False or resume_from_checkpoint == "":
        return None
    if resume_from_checkpoint is True or str(resume_from_checkpoint).lower() in ("auto", "last", "true"):
        checkpoint = latest_intact_checkpoint(output_dir, thorough)
        logger.info("Resuming from %s", checkpoint or "scratch (no intact checkpoint found)")
        return checkpoint
    problems = checkpoint_problems(resume_from_checkpoint, thorough)
    if problems:
        raise ValueError(
            f"Cannot resume from {resume_from_checkpoint}: {'; '.join(problems)}. "
            "Use --resume_from_checkpoint auto to take the newest intact checkpoint instead."
        )
    return str(resume_from_checkpoint)


# --------------------------------------------------------------------------------------------------------
# Output-dir protection
# --------------------------------------------------------------------------------------------------------

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


def check_output_dir(output_dir, overwrite, resume):
    """Refuse to train over a finished run unless asked to.

    Args:
        output_dir: the run's output dir.
        overwrite: the user asked to overwrite it.
        resume: the user asked to resume (any truthy `resume_from_checkpoint`).

    Raises:
        FileExistsError: `output_dir` holds a finished run and neither flag is set.
    """
    if finished_run(output_dir) and not overwrite and not resume:
        raise FileExistsError(
            f"{output_dir} already holds a finished run (model.safetensors and config.json). "
            "Pass --overwrite_output_dir true to train over it, --resume_from_checkpoint auto to continue "
            "from its newest intact checkpoint, or choose another --output_dir."
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
        RuntimeError: on entering, when another live run holds the lock or it was written on another host.
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
                raise RuntimeError(
                    f"{self.path} was written by pid {pid} on host {host}, which cannot be checked from here. "
                    f"If no run is writing into {self.output_dir} any more, delete {self.path} and start again."
                )
            if isinstance(pid, int) and _pid_alive(pid, info.get("pid_start")):
                raise RuntimeError(
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


# --------------------------------------------------------------------------------------------------------
# Final save
# --------------------------------------------------------------------------------------------------------

def _wait_for_everyone(trainer):
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None:
        accelerator.wait_for_everyone()


def save_final_model_atomically(trainer, output_dir=None):
    """`trainer.save_model(output_dir)`, but a crash while writing leaves the previous model files intact.

    The model is written into a temporary sibling `output_dir/.final-tmp-<step>`, then each file is moved
    into `output_dir` with `os.replace` (atomic per file on one filesystem). The slow, crash-prone part
    (writing the weights) happens entirely in the temporary dir; the moves take microseconds. The set of
    files is not replaced as one unit: a crash between two moves can leave, say, the new model.safetensors
    beside the old config.json. Weight files move first and config.json last; old weight files the new save
    did not produce (e.g. shards of a previously sharded model) are removed only after all moves.

    Must be called on every process: under FSDP/DeepSpeed `save_model` gathers the weights collectively
    (the temp dir name is the same on all processes, so no broadcast is needed); only the main process
    writes and moves files, and all processes wait for it before returning.

    Args:
        trainer: a `transformers.Trainer` after training.
        output_dir: where the final model goes; `trainer.args.output_dir` by default.

    Returns:
        The sorted names of the files moved into `output_dir` (empty on non-main processes).
    """
    output_dir = Path(output_dir or trainer.args.output_dir)
    main = trainer.is_world_process_zero()
    tmp = output_dir / f"{FINAL_TMP_PREFIX}{trainer.state.global_step}"
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        for stale in output_dir.glob(f"{FINAL_TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a run killed mid-save
    _wait_for_everyone(trainer)  # nobody writes into tmp before the main process has cleaned it
    moved = []
    try:
        trainer.save_model(str(tmp))
        _wait_for_everyone(trainer)
        if main:
            moved = _move_into(tmp, output_dir)
    finally:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
    _wait_for_everyone(trainer)
    return moved


def _move_into(tmp, output_dir):
    files = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    # Weights first and config last: a crash between moves leaves the new weights under the old config,
    # which for a same-architecture run is the least harmful mixture.
    order = {"config.json": 2, "preprocessor_config.json": 1}
    files.sort(key=lambda rel: (order.get(rel.name, 0), str(rel)))
    for rel in files:
        target = output_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, target)
    new = {str(rel) for rel in files}
    for pattern in _STALE_WEIGHT_PATTERNS:
        for old in output_dir.glob(pattern):
            if old.is_file() and old.name not in new:
                logger.info("Removing %s left from an earlier save", old.name)
                old.unlink()
    return sorted(new)

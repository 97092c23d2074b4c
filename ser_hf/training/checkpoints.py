"""Checked resumption: is a checkpoint intact, and which is the newest one that is.

The Trainer resumes from the highest-numbered `checkpoint-*` without looking inside it: a truncated
`model.safetensors` or `optimizer.pt` (a run killed while saving, a full disk) crashes the resume, and a
missing `optimizer.pt` or `rng_state.pth` resumes silently with a fresh optimizer / RNG. This module checks
a checkpoint before it is used and picks the newest intact one.

What transformers 5.23's Trainer writes into `checkpoint-N` (CPU, one process, checked):
`model.safetensors`, `config.json`, `optimizer.pt`, `scheduler.pt`, `rng_state.pth`, `trainer_state.json`,
`training_args.bin`, plus `preprocessor_config.json` when a processing_class is given. Also `scaler.pt` with
fp16 on a GPU, `rng_state_{rank}.pth` instead of `rng_state.pth` with several processes, and
`model.safetensors.index.json` + `model-0000x-of-0000y.safetensors` for models above the shard size.
`optimizer.pt`, `scheduler.pt`, `rng_state*.pth` and `scaler.pt` are `torch.save` zip archives.
"""

import json
import logging
import re
import struct
import zipfile
from pathlib import Path

from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"  # the pre-safetensors format: still accepted if someone resumes an old run
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"


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
        UsageError: an explicitly named checkpoint is missing or broken (the user asked for that one, so
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
        raise UsageError(
            f"Cannot resume from {resume_from_checkpoint}: {'; '.join(problems)}. "
            "Use --resume_from_checkpoint auto to take the newest intact checkpoint instead."
        )
    return str(resume_from_checkpoint)

"""The final save: a crash while writing the model leaves the previous model files in place."""

import logging
import os
import shutil
from pathlib import Path

from ser_hf.storage import default_file_mode, is_storage_failure, write_failed

logger = logging.getLogger(__name__)

FINAL_TMP_PREFIX = ".final-tmp-"
# Files of a finished model that a newer final save must not leave behind from an older one (an old index
# beside a new single file would make from_pretrained load the old shards).
_STALE_WEIGHT_PATTERNS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
                          "pytorch_model.bin.index.json")


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
    except Exception as err:
        if not is_storage_failure(err):
            raise
        raise write_failed(err, "the final model", output_dir, "rerun with --resume true: training is done, so it "
                           "only saves the model and writes the reports") from err
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
    mode = default_file_mode()
    for rel in files:
        target = output_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # Weights may arrive as a private temporary file (0600): a shared model folder must be readable like
        # every other output, so each file gets the mode an ordinary new file would have.
        os.chmod(tmp / rel, mode)
        os.replace(tmp / rel, target)
    new = {str(rel) for rel in files}
    for pattern in _STALE_WEIGHT_PATTERNS:
        for old in output_dir.glob(pattern):
            if old.is_file() and old.name not in new:
                logger.info("Removing %s left from an earlier save", old.name)
                old.unlink()
    return sorted(new)

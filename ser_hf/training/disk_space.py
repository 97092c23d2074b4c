"""Room for the checkpoints: checked before training, and a full disk while one is written said in one line.

A fine-tuning run writes a checkpoint at every save (weights, and Adam's two moments for every trained weight) and
keeps `save_total_limit` of them, one more while the newest is written and before the oldest is rotated out, and the
best one besides when `load_best_model_at_end` is on; then the final model. wav2vec2-base's checkpoint (CNN frozen)
is 996 MB, which `checkpoint_bytes` estimates as 1,050 MB (Adam keeps no state for the few weights that get no
gradient): a run on a nearly full disk should stop before its first step, not at its first save an hour in.
"""

import math
from pathlib import Path

from ser_hf.storage import require_free_space

# Besides weights and optimizer moments: config, scheduler, RNG and trainer state, the preprocessor config.
_CHECKPOINT_EXTRA = 64 * 2**10  # about 30 KB on wav2vec2-base (transformers 5.25)


def checkpoint_bytes(model, save_only_model=False) -> int:
    """An estimate of one `checkpoint-N`: the weights as stored, plus two fp32 moments per trained weight.

    Args:
        model: the model being trained.
        save_only_model: the training argument: checkpoints without optimizer state.
    """
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    moments = 0 if save_only_model else sum(2 * 4 * p.numel() for p in model.parameters() if p.requires_grad)
    return weights + moments + _CHECKPOINT_EXTRA


def _strategy(value):
    return str(getattr(value, "value", value))


def planned_saves(args, train_clips, world_size=1) -> int:
    """How many checkpoints a run saves at most: one per epoch, or per `save_steps` steps, or (strategy "best")
    per evaluation.

    Args:
        args: the `TrainingArguments`.
        train_clips: the training set's size.
        world_size: processes that share each step.
    """
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size
    steps_per_epoch = max(1, math.ceil(train_clips / per_step))
    steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    strategy = _strategy(args.save_strategy)
    if strategy == "best":
        strategy, every = _strategy(args.eval_strategy), args.eval_steps
    else:
        every = args.save_steps
    if strategy == "epoch":
        return max(1, math.ceil(steps / steps_per_epoch))
    if strategy == "steps":
        every = every if every >= 1 else math.ceil(every * steps)  # a fraction of the run, as the Trainer reads it
        return max(1, steps // max(1, int(every)))
    return 0


def checkpoints_at_once(args, saves) -> int:
    """The most checkpoints on disk at one time: the kept ones, the best one, and the one being written.

    Args:
        args: the `TrainingArguments` (save_strategy, save_total_limit, load_best_model_at_end).
        saves: how many saves the run makes at most (its epochs or steps over save_steps).
    """
    if _strategy(args.save_strategy) == "no" or saves == 0:
        return 0
    kept = args.save_total_limit or saves
    if args.load_best_model_at_end:
        kept = max(kept, 2)  # the Trainer keeps the best checkpoint beside the newest, whatever the limit
    return min(kept + 1, saves)


def check_room_for_checkpoints(model, args, saves, output_dir):
    """Refuse, before the first step, a run whose checkpoints and final model do not fit on its output disk.

    Checkpoints already in `output_dir` (a resumed run) count as written: they are rotated out as new ones come.

    Args:
        model: the model about to be trained.
        args: its `TrainingArguments`.
        saves: how many saves the run makes at most.
        output_dir: the run's output dir.

    Raises:
        UsageError: too little free space; names the folder, the sizes and the fixes.
    """
    one = checkpoint_bytes(model, args.save_only_model)
    existing = sum(1 for p in Path(output_dir).glob("checkpoint-*") if p.is_dir())
    at_once = max(0, checkpoints_at_once(args, saves) - existing)
    final = sum(p.numel() * p.element_size() for p in model.parameters())
    needed = at_once * one + final
    require_free_space(output_dir, needed,
                       f"{at_once} checkpoints of about {one / 2**20:,.0f} MB and the final model",
                       "free space there, use --output_dir on a larger disk, or keep fewer checkpoints with "
                       "--save_total_limit 1 (--save_only_model true also leaves the optimizer state out, and "
                       "a resumed run then starts with a fresh optimizer)")

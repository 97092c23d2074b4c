"""Learning-rate schedules with SER defaults, built from the Trainer's own schedule functions."""

import math

import torch
from transformers.optimization import get_wsd_schedule

# Decay over the last 30 % of training: warmup 10 % (the recipe's warmup_steps), stable until 70 %.
DEFAULT_DECAY_RATIO = 0.3


def warmup_stable_decay(optimizer, num_training_steps, num_warmup_steps, decay_ratio=DEFAULT_DECAY_RATIO,
                        decay_type="linear", min_lr_ratio=0.0):
    """Linear warmup, constant, then decay to `min_lr_ratio` over the last `decay_ratio` of training.

    Args:
        optimizer: the optimizer whose LR is scheduled.
        num_training_steps: total optimizer steps.
        num_warmup_steps: steps of linear warmup from 0.
        decay_ratio: share of training spent decaying (0.3 = decay starts at 70 %).
        decay_type: 'linear', 'cosine' or '1-sqrt'.
        min_lr_ratio: final LR as a share of the peak.
    """
    if not 0.0 <= decay_ratio <= 1.0:
        raise ValueError(f"decay_ratio must be in [0, 1], got {decay_ratio}")
    num_decay_steps = math.ceil(num_training_steps * decay_ratio)
    num_stable_steps = max(0, num_training_steps - num_warmup_steps - num_decay_steps)
    return get_wsd_schedule(
        optimizer,
        num_warmup_steps=num_warmup_steps,
        num_decay_steps=num_decay_steps,
        num_stable_steps=num_stable_steps,
        decay_type=decay_type,
        min_lr_ratio=min_lr_ratio,
    )


def reduce_on_plateau(optimizer, mode="min", factor=0.5, patience=2):
    """Multiply the LR by `factor` after `patience` evaluations without improvement of the watched metric."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience)

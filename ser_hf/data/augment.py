"""Waveform augmentation presets (audiomentations) for the training transform, reproducibly seeded.

audiomentations draws its parameters from Python's `random` and noise from `np.random`, both global.
`build_augmentation` returns a function that, for every call, derives a seed from torch's global RNG
(which the Trainer seeds and stores in every checkpoint, so a resumed run draws the same augmentations
as an uninterrupted one), seeds `random` and `np.random` with it, augments, and puts their previous
states back, so nothing else in the process sees its global RNG state changed.

Usage:
    augment = build_augmentation("seed21", seed=42)
    if augment is not None:
        waveform = augment(waveform, sample_rate=16_000)
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

PRESETS = {
    "none": "no augmentation",
    "seed21": (
        "the 21-label seed recipe: Gaussian noise (amplitude 0.001-0.015), pitch shift (+-4 semitones), "
        "time stretch (rate 0.8-1.25, clip length changes), each with p=0.5"
    ),
    "light": "gain (+-6 dB, p=0.5) and faint Gaussian noise (amplitude 0.001-0.005, p=0.3)",
}


def _compose(preset: str):
    """Build the audiomentations pipeline of a preset (imported lazily: only training needs it)."""
    from audiomentations import AddGaussianNoise, Compose, Gain, PitchShift, TimeStretch

    if preset == "seed21":
        return Compose(
            [
                AddGaussianNoise(min_amplitude=0.001, max_amplitude=0.015, p=0.5),
                PitchShift(min_semitones=-4, max_semitones=4, p=0.5),
                # leave_length_unchanged=False: the default (True) would cut the end of a slowed-down clip
                # and pad a sped-up one with silence; the collator pads variable lengths anyway.
                TimeStretch(min_rate=0.8, max_rate=1.25, leave_length_unchanged=False, p=0.5),
            ]
        )
    if preset == "light":
        return Compose(
            [
                Gain(min_gain_db=-6.0, max_gain_db=6.0, p=0.5),
                AddGaussianNoise(min_amplitude=0.001, max_amplitude=0.005, p=0.3),
            ]
        )
    raise AssertionError(preset)  # unreachable: build_augmentation checks the name first


def build_augmentation(preset: str, seed: int = 0) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """Build a seeded augmentation function from a preset name.

    Args:
        preset: a key of `PRESETS` ("none", "seed21", "light").
        seed: mixed into every call's seed, so two runs with different seeds but the same torch state
            still draw different augmentations.

    Returns:
        None for "none"; otherwise `augment(samples, sample_rate) -> np.ndarray`, taking a 1-D float32
        waveform and returning a finite 1-D float32 waveform (its length may differ: time stretch).
        Each call draws one int from torch's global RNG and leaves `random` and `np.random` as it found
        them. Not thread-safe (it swaps global RNG state); DataLoader workers are processes, which is fine.

    Raises:
        ValueError: unknown preset (the message lists the valid ones).
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if preset == "none":
        return None
    pipeline = _compose(preset)

    def augment(samples: np.ndarray, sample_rate: int) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"augment expects a 1-D waveform, got shape {samples.shape}")
        draw = int(torch.randint(0, 2**31 - 1, (1,)))
        call_seed = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, draw]).generate_state(1)[0])
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(call_seed)
            np.random.seed(call_seed)
            out = pipeline(samples=samples, sample_rate=sample_rate)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        if out.size == 0 or not np.all(np.isfinite(out)):
            # A degenerate transform must not poison training: fall back to the clean clip.
            return samples
        return out

    return augment

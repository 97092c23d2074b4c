"""Tests for ser_hf.data.augment: presets, seeding through torch's RNG, no leak of global RNG state."""

import random

import numpy as np
import pytest
import torch

from ser_hf.data.augment import PRESETS, build_augmentation

SR = 16_000


def _signal(seconds=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _run(augment, torch_seed, n=4):
    torch.manual_seed(torch_seed)
    return [augment(_signal(), SR) for _ in range(n)]


def test_none_is_none():
    assert build_augmentation("none", seed=0) is None


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError) as err:
        build_augmentation("heavy", seed=0)
    for name in PRESETS:
        assert name in str(err.value)


@pytest.mark.parametrize("preset", ["seed21", "light"])
def test_changes_signal_and_output_is_finite_float32(preset):
    augment = build_augmentation(preset, seed=0)
    outputs = _run(augment, torch_seed=0, n=8)
    clean = _signal()
    # p=0.5 per transform: over 8 calls, at least one must change the clip.
    assert any(len(o) != len(clean) or not np.allclose(o, clean) for o in outputs)
    for out in outputs:
        assert out.dtype == np.float32 and out.ndim == 1 and out.size > 0
        assert np.all(np.isfinite(out))


def test_same_torch_seed_same_output_different_seed_differs():
    augment = build_augmentation("seed21", seed=0)
    first, second, other = _run(augment, 1), _run(augment, 1), _run(augment, 2)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert any(len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(first, other))
    # The build seed matters too, at the same torch state.
    other_build = _run(build_augmentation("seed21", seed=1), 1)
    assert any(len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(first, other_build))


def test_global_rng_state_unchanged():
    augment = build_augmentation("seed21", seed=0)
    random.seed(123)
    np.random.seed(456)
    py_state, np_state = random.getstate(), np.random.get_state()
    torch.manual_seed(0)
    for _ in range(3):
        augment(_signal(), SR)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]

"""Shared fixtures: generated audio in RAVDESS layout and tiny random models. Nothing is downloaded."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ser_hf.audio import SAMPLE_RATE  # noqa: E402
from ser_hf.labels import RAVDESS_EMOTIONS  # noqa: E402

# A wav2vec2-shaped model small enough to train in seconds (the same keys work for hubert and wavlm).
TINY_ENCODER = {
    "conv_dim": [8, 8, 8],
    "conv_stride": [5, 4, 4],
    "conv_kernel": [10, 8, 8],
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 16,
    "mask_time_prob": 0.0,
    "layerdrop": 0.0,
}


def write_tone(path, seconds, freq, seed, sr=SAMPLE_RATE, channels=1):
    """A noisy tone: distinct per emotion so a tiny model has something to learn."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr, subtype="PCM_16")
    return path


def make_ravdess_tree(root, actors=8, seconds=(0.4, 1.2)):
    """RAVDESS-named clips: one per emotion and actor (normal intensity, statement 01, repetition 01)."""
    rng = np.random.default_rng(0)
    for actor in range(1, actors + 1):
        for code, _ in enumerate(RAVDESS_EMOTIONS, start=1):
            name = f"03-01-{code:02d}-01-01-01-{actor:02d}.wav"
            write_tone(root / f"Actor_{actor:02d}" / name, rng.uniform(*seconds), 150 + 90 * code, seed=actor * 100 + code)
    return root


@pytest.fixture(scope="session")
def ravdess_tree(tmp_path_factory):
    """8 actors x 8 emotions of generated audio in the RAVDESS layout."""
    return make_ravdess_tree(tmp_path_factory.mktemp("ravdess"))

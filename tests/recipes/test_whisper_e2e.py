"""End-to-end: recipes/configs/ravdess_whisper.yaml on generated RAVDESS-layout audio with a tiny Whisper, both as an
openai-layout "pretrained" folder (standing in for openai/whisper-base) and built from a config."""

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration, pipeline

from tests.conftest import TINY_WHISPER, pretrained_model_args, save_tiny_whisper, tiny_run_args, train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _argv(data_dir, output_dir, **model):
    return tiny_run_args(data_dir, output_dir, corpus=None, config=ROOT / "recipes/configs/ravdess_whisper.yaml",
                         max_steps=8, gradient_accumulation_steps=1, per_device_eval_batch_size=4, learning_rate="3e-3",
                         eval_strategy="steps", eval_steps=4, save_strategy="steps", save_steps=4, logging_steps=2,
                         seed=1, early_stopping_patience=0, **model)


@pytest.fixture(scope="module")
def pretrained_run(ravdess_tree, tmp_path_factory):
    """The config as a user runs it, on a local openai-layout folder, bottom layer frozen, weighted layer sum."""
    source = save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))
    output_dir = tmp_path_factory.mktemp("whisper_pretrained") / "out"
    results = train(_argv(ravdess_tree, output_dir, **pretrained_model_args(source), freeze_encoder_layers=1,
                          use_weighted_layer_sum=True))
    return output_dir, results, source


@pytest.fixture(scope="module")
def from_config_run(ravdess_tree, tmp_path_factory):
    """model_type whisper, random init, nothing frozen, with ravdess.yaml's padding mode."""
    output_dir = tmp_path_factory.mktemp("whisper_from_config") / "out"
    results = train(_argv(ravdess_tree, output_dir, model_type="whisper", model_config_overrides=TINY_WHISPER,
                          padding="max_length"))
    return output_dir, results, None


@pytest.mark.parametrize("run", ["pretrained_run", "from_config_run"])
def test_pipeline_labels_equal_the_reported_predictions(run, request, ravdess_tree):
    output_dir, results, _ = request.getfixturevalue(run)
    config = json.loads((output_dir / "config.json").read_text())
    assert config["architectures"] == ["WhisperForAudioClassification"] and "auto_map" not in config
    assert config["id2label"]["4"] == "angry"
    preprocessor = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert preprocessor["feature_extractor_type"] == "WhisperFeatureExtractor" and preprocessor["chunk_length"] == 1
    classifier = pipeline("audio-classification", model=str(output_dir), device="cpu")
    with open(output_dir / "predictions_validation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == results["validation"]["num_examples"] == 16  # 2 held-out actors x 8 emotions
    top = [classifier(str(ravdess_tree / row["path"]), top_k=1)[0] for row in rows]
    assert [t["label"] for t in top] == [row["predicted"] for row in rows]
    assert [t["score"] for t in top] == pytest.approx([float(row["confidence"]) for row in rows], abs=1e-4)
    for name in ("model.safetensors", "README.md", "ser_results.json", "confusion_matrix.png"):
        assert (output_dir / name).is_file(), name


def test_frozen_parts_of_the_pretrained_encoder_did_not_move(pretrained_run):
    output_dir, _, source = pretrained_run
    before = WhisperForConditionalGeneration.from_pretrained(source).model.encoder.state_dict()
    after = load_file(output_dir / "model.safetensors")
    for name in ("conv1.weight", "conv2.weight", "layers.0.fc1.weight"):  # front end and layer 1 of 2: frozen
        assert torch.equal(after[f"encoder.{name}"], before[name]), name
    assert not torch.equal(after["encoder.layers.1.fc1.weight"], before["layers.1.fc1.weight"])
    assert "layer_weights" in after

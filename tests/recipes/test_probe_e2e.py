"""End-to-end: `--probe true` (one fold and a cross-validation), then LP-FT from the probe, on generated RAVDESS-layout
audio with a tiny random wav2vec2."""

import csv
import json
from pathlib import Path

import pytest
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

from ser_hf.commands.crossval import main as crossval_main
from ser_hf.config import ModelArguments
from ser_hf.models.probe_features import encoder_identity
from tests.conftest import TINY_ENCODER, make_ravdess_tree, tiny_run_args, train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
MODEL = {**TINY_ENCODER, "num_hidden_layers": 2, "feat_extract_norm": "layer"}


# A probe run has no Trainer steps or crops: those of TINY_RUN are left out (LP-FT sets its own).
PROBE = {"corpus": None, "freeze_feature_encoder": None, "max_steps": None, "per_device_train_batch_size": None,
         "max_duration_seconds": None, "model_config_overrides": MODEL, "test_fold": 2, "per_device_eval_batch_size": 4,
         "seed": 1, "probe_epochs": 60, "probe_learning_rate": "3e-2", "probe_batch_size": 8}


def _argv(data_dir, output_dir, **overrides):
    return tiny_run_args(data_dir, output_dir, config=ROOT / "recipes/configs/ravdess.yaml", **{**PROBE, **overrides})


def _predictions(output_dir, split="validation"):
    with open(Path(output_dir) / f"predictions_{split}.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def probe_run(ravdess_tree, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("probe") / "out"
    return output_dir, train(_argv(ravdess_tree, output_dir, probe=True))


def test_the_probe_output_is_an_ordinary_hub_ready_run(probe_run):
    output_dir, results = probe_run
    for name in ["model.safetensors", "config.json", "preprocessor_config.json", "README.md", "ser_results.json",
                 "predictions_validation.csv", "predictions_test.csv", "data_report.json", "data_args.json",
                 "confusion_matrix.png", "training_curves.png", "probe_results.json", "probe_layers.md",
                 "probe_layers.json", "probe_layers.png"]:
        assert (output_dir / name).is_file(), name
    config = json.loads((output_dir / "config.json").read_text())
    assert config["use_weighted_layer_sum"] and config["architectures"] == ["Wav2Vec2ForSequenceClassification"]
    card = (output_dir / "README.md").read_text()
    assert "linear probe" in card and "the encoder is frozen" in card and "## Linear probe" in card
    probe = json.loads((output_dir / "probe_results.json").read_text())
    assert [row["layer"] for row in probe["layers"]] == [0, 1, 2] and "test_ua" in probe["layers"][0]
    assert probe["agreement"]["validation"] == {"clips": 16, "same_prediction": 16}
    assert results["test"]["num_examples"] == 16
    # The encoder is the frozen random one the cache was keyed by.
    model = AutoModelForAudioClassification.from_pretrained(output_dir)
    args = ModelArguments(model_name_or_path=None, model_type="wav2vec2")
    identity = encoder_identity(args, model, AutoFeatureExtractor.from_pretrained(output_dir))
    assert identity["weights"] == probe["encoder"]["weights"]


def test_pipeline_labels_equal_the_probe_predictions(probe_run, ravdess_tree):
    output_dir, _ = probe_run
    classifier = pipeline("audio-classification", model=str(output_dir), device="cpu")
    rows = _predictions(output_dir)
    top = [classifier(str(ravdess_tree / row["path"]), top_k=1)[0] for row in rows]
    assert [t["label"] for t in top] == [row["predicted"] for row in rows]
    assert [t["score"] for t in top] == pytest.approx([float(row["confidence"]) for row in rows], abs=1e-4)


def test_a_second_run_reuses_the_cache_and_repeats_the_probe(probe_run, ravdess_tree, tmp_path):
    output_dir, results = probe_run
    again = train(_argv(ravdess_tree, tmp_path / "again", probe=True, probe_layer_analysis=False))
    probe = json.loads((tmp_path / "again" / "probe_results.json").read_text())
    assert probe["cache"]["computed"] == 0 and probe["cache"]["clips"] == 64 and probe["layers"] is None
    assert again["validation"]["ua"] == results["validation"]["ua"]
    assert _predictions(tmp_path / "again") == _predictions(output_dir)


def test_lpft_starts_from_the_probe_head(probe_run, ravdess_tree, tmp_path):
    # With a learning rate of 0 the fine-tuned model is the model it started from: the probe's, head included.
    output_dir, _ = probe_run
    train(_argv(ravdess_tree, tmp_path / "lpft", init_head_from=output_dir, learning_rate=0, max_steps=2,
                per_device_train_batch_size=4, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                early_stopping_patience=0, freeze_feature_encoder=False))
    assert json.loads((tmp_path / "lpft" / "config.json").read_text())["use_weighted_layer_sum"]
    assert f"| init_head_from | {output_dir} |" in (tmp_path / "lpft" / "README.md").read_text()
    assert _predictions(tmp_path / "lpft") == _predictions(output_dir)


def test_probe_cross_validation_fills_one_cache_for_every_fold(tmp_path):
    corpus = make_ravdess_tree(tmp_path / "corpus")  # its own: no cache from the other tests
    root = tmp_path / "cv"
    argv = _argv(corpus, root, probe=True, probe_layer_analysis=False, fold=None)
    assert crossval_main([*argv, "--folds", "0,1", "--parallel", "2", "--baseline", "false"]) == 0
    # The parent process filled one cache; the folds, running at once, found every clip in it.
    assert len(list((corpus / ".ser_hf_probe_cache").iterdir())) == 1
    for fold in (0, 1):
        probe = json.loads((root / f"fold_{fold}" / "probe_results.json").read_text())
        assert probe["cache"]["computed"] == 0 and probe["cache"]["clips"] == 64, fold
    report = json.loads((root / "crossval_results.json").read_text())
    assert [row["fold"] for row in report["folds"]] == [0, 1]

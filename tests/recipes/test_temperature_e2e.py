"""End-to-end: `--temperature_scaling true` folds T into the saved model; the pipeline gives the reported scores."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from transformers import pipeline

from tests.conftest import TINY_ENCODER, tiny_run_args, train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibrated(ravdess_tree, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("calibrated")
    results = train(tiny_run_args(
        ravdess_tree, output_dir, config=ROOT / "recipes/configs/ravdess.yaml",
        model_config_overrides={**TINY_ENCODER, "feat_extract_norm": "layer"}, padding="longest", max_steps=8,
        learning_rate="3e-3", eval_strategy="steps", eval_steps=8, save_strategy="steps", save_steps=8,
        load_best_model_at_end=True, metric_for_best_model="ua", seed=1, remove_unused_columns=False,
        temperature_scaling=True))
    return output_dir, results


def test_pipeline_gives_the_calibrated_scores_and_the_same_labels(calibrated, ravdess_tree):
    output_dir, results = calibrated
    validation = results["validation"]
    temperature = json.loads((output_dir / "config.json").read_text())["calibration_temperature"]
    assert temperature == pytest.approx(validation["temperature"]) and temperature != 1.0
    assert validation["temperature_fitted_on"] == "validation" and "ece_before_temperature" in validation

    calibrated_pipe = pipeline("audio-classification", model=str(output_dir), device="cpu")
    # The best checkpoint is the same model before T was folded in.
    original_pipe = pipeline("audio-classification", model=str(next(output_dir.glob("checkpoint-*"))), device="cpu")
    with open(output_dir / "predictions_validation.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[:6]:
        path = str(ravdess_tree / row["path"])
        after, before = calibrated_pipe(path, top_k=8), original_pipe(path, top_k=8)
        # Reported predictions are the pipeline's on the saved (calibrated) model.
        assert after[0]["label"] == row["predicted"] == before[0]["label"]
        assert after[0]["score"] == pytest.approx(float(row["confidence"]), abs=1e-4)
        # And its scores are softmax(original logits / T); log-probabilities stand in for the logits.
        log_p = np.log([s["score"] for s in sorted(before, key=lambda s: s["label"])])
        expected = np.exp(log_p / temperature) / np.exp(log_p / temperature).sum()
        assert [s["score"] for s in sorted(after, key=lambda s: s["label"])] == pytest.approx(expected, abs=1e-4)


def test_card_reports_ece_before_and_after(calibrated):
    output_dir, results = calibrated
    card = (output_dir / "README.md").read_text()
    assert "## Calibration" in card and f"T = {results['validation']['temperature']:.3f}" in card
    assert "(T was fitted on these clips: optimistic)" in card
    assert (output_dir / "reliability_diagram.png").is_file()
    saved = json.loads((output_dir / "ser_results.json").read_text())["validation"]
    assert saved["ece"] == pytest.approx(results["validation"]["ece"]) and len(saved["calibration"]["bins"]) == 15

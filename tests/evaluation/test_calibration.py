"""Tests for ser_hf.evaluation.calibration: ECE by hand, reliability bins, temperature fit and folding into a model."""

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import pipeline

from ser_hf.config import ModelArguments
from ser_hf.evaluation.calibration import (
    calibration_from_rows,
    ece_from_bins,
    expected_calibration_error,
    fit_temperature,
    fold_temperature_into_classifier,
    pool_bins,
    reliability_bins,
)
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from ser_hf.models.encoders import build_model
from tests.conftest import TINY_ENCODER


def test_ece_on_a_hand_computed_case():
    # 15 bins of width 1/15 = 0.0667; bin i holds (i/15, (i+1)/15].
    #   0.95, 0.95 (right, wrong) -> bin 14: accuracy 0.5, confidence 0.95, gap 0.45, weight 2/6
    #   0.60 (right)              -> bin 8 (0.533, 0.6]: accuracy 1, confidence 0.6, gap 0.40, weight 1/6
    #   0.62, 0.64 (wrong, right) -> bin 9 (0.6, 0.667]: accuracy 0.5, confidence 0.63, gap 0.13, weight 2/6
    #   0.30 (wrong)              -> bin 4 (0.267, 0.333]: accuracy 0, confidence 0.3, gap 0.30, weight 1/6
    # ECE = (2 * 0.45 + 0.40 + 2 * 0.13 + 0.30) / 6 = 1.86 / 6 = 0.31
    confidences = [0.95, 0.95, 0.60, 0.62, 0.64, 0.30]
    correct = [True, False, True, False, True, False]
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.31)
    bins = reliability_bins(confidences, correct)
    assert [i for i, b in enumerate(bins) if b["count"]] == [4, 8, 9, 14]
    assert bins[9] == pytest.approx({"lower": 9 / 15, "upper": 10 / 15, "count": 2, "accuracy": 0.5, "confidence": 0.63})
    assert bins[0]["accuracy"] is None and bins[0]["confidence"] is None
    # Two bins: the five clips above 0.5 together -> |3/5 - 3.76/5| * 5/6 + |0 - 0.3| * 1/6.
    assert expected_calibration_error(confidences, correct, n_bins=2) == pytest.approx(0.152 * 5 / 6 + 0.3 / 6)


def test_bin_edges_and_perfect_calibration():
    edges = reliability_bins([1 / 15, 1.0, 0.0], [True, True, False])
    assert edges[0]["count"] == 2 and edges[14]["count"] == 1  # upper edges included, 1.0 in the last bin
    # Within each bin accuracy equals mean confidence: ECE 0.
    assert expected_calibration_error([0.75] * 4 + [0.5] * 2, [1, 1, 1, 0, 1, 0]) == pytest.approx(0.0)


def test_pooled_bins_equal_the_bins_of_all_clips():
    rng = np.random.default_rng(0)
    conf, right = rng.uniform(0.1, 1, 300), rng.uniform(size=300) < 0.6
    parts = [reliability_bins(conf[s], right[s]) for s in (slice(0, 100), slice(100, 300))]
    pooled, whole = pool_bins(parts), reliability_bins(conf, right)
    assert [b["count"] for b in pooled] == [b["count"] for b in whole]
    assert ece_from_bins(pooled) == pytest.approx(ece_from_bins(whole))


def test_calibration_from_prediction_rows():
    rows = [{"true": "sad", "predicted": "sad", "confidence": "0.9"},
            {"true": "sad", "predicted": "happy", "confidence": "0.5"}]
    summary = calibration_from_rows(rows)
    assert summary["ece"] == pytest.approx((0.1 + 0.5) / 2)
    assert summary["accuracy"] == 0.5 and summary["mean_confidence"] == pytest.approx(0.7)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_fit_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(1)
    logits = 3 * rng.standard_normal((5_000, 4))
    probs = np.exp(logits / true_t) / np.exp(logits / true_t).sum(axis=1, keepdims=True)
    labels = (rng.uniform(size=(len(probs), 1)) > probs.cumsum(axis=1)).sum(axis=1)  # drawn from softmax(logits / T)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)
    # Log-probabilities are logits up to a per-row constant: same T.
    assert fit_temperature(np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True)), labels) == \
        pytest.approx(fit_temperature(logits, labels), rel=1e-4)


def test_folded_temperature_gives_softmax_of_scaled_logits_through_the_pipeline(tmp_path):
    id2label, label2id = label_maps(RAVDESS_EMOTIONS)
    args = ModelArguments(model_name_or_path=None, model_type="wav2vec2", model_config_overrides=dict(TINY_ENCODER))
    torch.manual_seed(0)
    model, feature_extractor = build_model(args, id2label, label2id)
    with torch.no_grad():  # a random head is nearly uniform; larger weights make T visible in the scores
        model.classifier.weight.mul_(30)
    model.eval()
    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000) + 0.05 * rng.standard_normal(8000)).astype(np.float32)
    sf.write(tmp_path / "clip.wav", wave, 16000, subtype="FLOAT")
    inputs = feature_extractor(wave, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0].numpy()

    fold_temperature_into_classifier(model, 2.0)
    model.save_pretrained(tmp_path / "model")
    feature_extractor.save_pretrained(tmp_path / "model")
    scores = pipeline("audio-classification", model=str(tmp_path / "model"), device="cpu")(
        str(tmp_path / "clip.wav"), top_k=len(RAVDESS_EMOTIONS))
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum()
    got = {s["label"]: s["score"] for s in scores}
    assert [got[id2label[i]] for i in range(len(expected))] == pytest.approx(expected.tolist(), abs=1e-5)
    assert scores[0]["label"] == id2label[int(np.argmax(logits))]  # the label does not change
    assert not np.allclose(expected, np.exp(logits) / np.exp(logits).sum(), atol=1e-3)  # but the scores do
    assert model.config.calibration_temperature == 2.0


def test_temperature_of_unrelated_labels_is_clipped():
    rng = np.random.default_rng(2)
    assert fit_temperature(3 * rng.standard_normal((500, 4)), rng.integers(0, 4, 500)) == 100.0


def test_folding_refuses_a_non_positive_temperature():
    model = torch.nn.Module()
    model.classifier = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="positive"):
        fold_temperature_into_classifier(model, 0.0)

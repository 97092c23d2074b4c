"""Tests for ser_hf.evaluation.dimensional: CCC, its reference points, and the Trainer's compute_metrics."""

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from ser_hf.evaluation.dimensional import (
    compute_dimensional_metrics,
    concordance_cc,
    flat_scores,
    is_dimensional,
    make_dimensional_compute_metrics,
    pearson_r,
)
from ser_hf.labels import DIMENSIONS


def test_ccc_of_perfect_agreement_is_1():
    true = [0.1, 0.4, 0.35, 0.9]
    assert concordance_cc(true, true) == pytest.approx(1.0)


def test_ccc_of_a_constant_prediction_is_0():
    assert concordance_cc([0.5, 0.5, 0.5, 0.5], [0.1, 0.4, 0.35, 0.9]) == 0.0
    assert concordance_cc(np.full(4, 0.425), [0.1, 0.4, 0.35, 0.9]) == 0.0  # even the exact mean


def test_ccc_by_hand():
    # p = 1, 2, 3; t = 2, 2, 4: means 2 and 8/3, variances 2/3 and 8/9, covariance 2/3 (population moments):
    # CCC = 2 * 2/3 / (2/3 + 8/9 + (2/3)^2) = (4/3) / 2 = 2/3; Pearson r = (2/3) / sqrt(2/3 * 8/9) = sqrt(3) / 2.
    assert concordance_cc([1, 2, 3], [2, 2, 4]) == pytest.approx(2 / 3)
    assert pearson_r([1, 2, 3], [2, 2, 4]) == pytest.approx(math.sqrt(3) / 2)


def test_ccc_drops_where_pearson_does_not_shifted_or_squeezed_predictions():
    true = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    for predicted in (true + 0.3, 0.5 + 0.2 * (true - 0.5)):  # CCC 0.64 and 0.38 by hand
        assert pearson_r(predicted, true) == pytest.approx(1.0)
        assert concordance_cc(predicted, true) < 0.7


def test_ccc_is_negative_for_opposite_predictions_and_refuses_one_clip():
    assert concordance_cc([0.9, 0.5, 0.1], [0.1, 0.5, 0.9]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        concordance_cc([0.5], [0.5])


def test_metrics_per_dimension_with_the_training_mean_baseline():
    true = np.array([[0.2, 0.5, 0.8], [0.4, 0.5, 0.6], [0.6, 0.7, 0.2], [0.8, 0.3, 0.4]])
    predicted = true.copy()
    predicted[:, 2] = 0.5  # valence: a constant
    train_mean = [0.5, 0.5, 0.5]
    metrics = compute_dimensional_metrics(predicted, true, DIMENSIONS, train_mean=train_mean)
    assert is_dimensional(metrics) and metrics["dimensions"] == list(DIMENSIONS) and metrics["num_examples"] == 4
    assert metrics["ccc_arousal"] == pytest.approx(1.0) and metrics["ccc_dominance"] == pytest.approx(1.0)
    assert metrics["ccc_valence"] == 0.0 and metrics["pearson_valence"] is None  # undefined, not NaN
    assert metrics["ccc"] == pytest.approx(2 / 3) and metrics["pearson"] == pytest.approx(1.0)
    assert metrics["mse_arousal"] == 0.0
    assert metrics["mse_valence"] == pytest.approx(np.mean((true[:, 2] - 0.5) ** 2))
    # The baseline predicts the training mean for every clip: its MSE per dimension, CCC 0.
    assert metrics["baseline_mse_arousal"] == pytest.approx(np.mean((true[:, 0] - 0.5) ** 2))
    assert metrics["baseline_mse"] == pytest.approx(np.mean((true - 0.5) ** 2))
    assert metrics["baseline_ccc"] == 0.0
    assert "baseline_mse" not in compute_dimensional_metrics(predicted, true)


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="3 dimensions"):
        compute_dimensional_metrics(np.zeros((4, 2)), np.zeros((4, 2)))


def test_the_trainers_compute_metrics_logs_floats_only():
    rng = np.random.default_rng(0)
    true = rng.uniform(size=(10, 3))
    predicted = true + 0.1 * rng.standard_normal((10, 3))
    scores = make_dimensional_compute_metrics()(EvalPrediction(predictions=predicted.astype(np.float32),
                                                               label_ids=true.astype(np.float32)))
    expected = compute_dimensional_metrics(predicted, true)
    assert scores["ccc"] == pytest.approx(expected["ccc"], abs=1e-6)
    assert {"ccc", "ccc_arousal", "pearson_valence", "mse", "mse_dominance"} <= set(scores)
    assert all(isinstance(v, float) for v in scores.values())
    assert not any(key.startswith(("baseline", "mean_")) for key in flat_scores(
        compute_dimensional_metrics(predicted, true, train_mean=[0.5] * 3)))

import pytest
import torch

from ser_hf.training.imbalance import class_weights


def test_inverse_weights_make_every_class_count_equally():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    weights = class_weights(labels, 4, "inverse")
    counts = torch.tensor([60.0, 30.0, 10.0, 0.0])
    contribution = weights * counts
    assert contribution[:3] == pytest.approx(torch.full((3,), float(contribution[0])))
    assert weights[3] == 0 and float(weights[:3].mean()) == pytest.approx(1.0)


def test_sqrt_inverse_is_milder_and_none_is_none():
    labels = [0] * 90 + [1] * 10
    inverse, sqrt = class_weights(labels, 2, "inverse"), class_weights(labels, 2, "sqrt_inverse")
    assert sqrt[1] / sqrt[0] == pytest.approx(3.0) and inverse[1] / inverse[0] == pytest.approx(9.0)
    assert class_weights(labels, 2, "none") is None
    with pytest.raises(ValueError, match="sqrt_inverse"):
        class_weights(labels, 2, "balanced")

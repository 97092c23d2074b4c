"""Class imbalance: loss weights from the training split's class counts."""

import numpy as np
import torch

WEIGHTING_SCHEMES = ("none", "inverse", "sqrt_inverse")


def class_weights(labels, num_classes, scheme="none"):
    """Per-class cross-entropy weights from the training labels.

    `inverse` weighs each class by N / (K * n_c), so every class contributes equally to the loss; `sqrt_inverse`
    takes the square root of that, a milder correction. Weights are scaled to mean 1 over the classes present,
    so the learning rate means the same with and without weighting. A class absent from training gets 0.

    Args:
        labels: training label ids.
        num_classes: K, the size of the label set.
        scheme: one of WEIGHTING_SCHEMES.

    Returns:
        a float tensor of K weights, or None for "none".
    """
    if scheme not in WEIGHTING_SCHEMES:
        raise ValueError(f"class_weighting must be one of {WEIGHTING_SCHEMES}, got {scheme!r}")
    if scheme == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    if scheme == "sqrt_inverse":
        weights = np.sqrt(weights)
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)

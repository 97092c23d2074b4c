"""Calibration: does a score of 0.8 mean right 80 % of the time? Expected calibration error, reliability bins,
and temperature scaling folded into the classifier so that `pipeline("audio-classification")` gives the
calibrated scores itself.

ECE (Guo et al. 2017, "On Calibration of Modern Neural Networks") sorts clips into equal-width bins of their
top-label confidence (the score of the predicted class, the number a pipeline user reads) and averages
|accuracy - mean confidence| over the bins, weighted by the share of clips in each bin. Temperature scaling divides
the logits by one scalar T > 0, fitted by minimising the negative log-likelihood of held-out labels: the argmax,
so UA / WA / macro-F1, cannot change; only how sure the scores are.
"""

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_BINS = 15  # Guo et al.'s choice; with a few hundred clips, more bins are mostly empty or noisy
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0


def _bin_index(confidences, n_bins):
    # Bins are (lower, upper]: a confidence of exactly 1/n_bins belongs to the first bin, 1.0 to the last one.
    return np.clip(np.ceil(np.asarray(confidences, dtype=float) * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability_bins(confidences, correct, n_bins=DEFAULT_BINS):
    """Clips per equal-width confidence bin, with their accuracy and mean confidence.

    Args:
        confidences: top-label confidence per clip, in [0, 1].
        correct: whether each clip's predicted label is its true label.
        n_bins: number of equal-width bins over [0, 1]; bin i holds confidences in (i / n_bins, (i + 1) / n_bins].

    Returns:
        list of n_bins dicts: `lower`, `upper`, `count`, `accuracy` and `confidence` (None for an empty bin).
    """
    confidences, correct = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    if confidences.shape != correct.shape:
        raise ValueError(f"{confidences.shape[0]} confidences for {correct.shape[0]} correctness flags")
    index = _bin_index(confidences, n_bins)
    bins = []
    for i in range(n_bins):
        members = index == i
        count = int(members.sum())
        bins.append({"lower": i / n_bins, "upper": (i + 1) / n_bins, "count": count,
                     "accuracy": float(correct[members].mean()) if count else None,
                     "confidence": float(confidences[members].mean()) if count else None})
    return bins


def ece_from_bins(bins):
    """Expected calibration error of reliability bins: sum over bins of (clips / all clips) * |accuracy - confidence|."""
    total = sum(b["count"] for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def expected_calibration_error(confidences, correct, n_bins=DEFAULT_BINS):
    """ECE with equal-width bins of top-label confidence (see `reliability_bins`). 0 is perfectly calibrated."""
    return ece_from_bins(reliability_bins(confidences, correct, n_bins))


def pool_bins(bin_lists):
    """Reliability bins of several evaluations (e.g. the folds of a cross-validation) as if their clips were one set.

    Args:
        bin_lists: lists of bins from `reliability_bins`, all with the same bin edges.

    Returns:
        One list of bins: counts summed, accuracy and confidence averaged weighted by clip counts.
    """
    pooled = []
    for same in zip(*bin_lists):
        count = sum(b["count"] for b in same)
        mean = (lambda key: sum(b[key] * b["count"] for b in same if b["count"]) / count) if count else None
        pooled.append({"lower": same[0]["lower"], "upper": same[0]["upper"], "count": count,
                       "accuracy": mean("accuracy") if count else None,
                       "confidence": mean("confidence") if count else None})
    return pooled


def calibration_summary(confidences, correct, n_bins=DEFAULT_BINS):
    """What a results file keeps about calibration: ECE, mean confidence against accuracy, and the bins.

    Returns:
        {"ece", "n_bins", "mean_confidence", "accuracy", "bins"}.
    """
    bins = reliability_bins(confidences, correct, n_bins)
    return {"ece": ece_from_bins(bins), "n_bins": n_bins, "mean_confidence": float(np.mean(confidences)),
            "accuracy": float(np.mean(correct)), "bins": bins}


def calibration_from_rows(rows, n_bins=DEFAULT_BINS):
    """`calibration_summary` of per-clip prediction rows (`confidence`, `true`, `predicted`, as in predictions_*.csv)."""
    confidences = [float(row["confidence"]) for row in rows]
    correct = [row["true"] == row["predicted"] for row in rows]
    return calibration_summary(confidences, correct, n_bins)


def fit_temperature(logits, labels, max_iter=100):
    """The temperature T > 0 that minimises the negative log-likelihood of softmax(logits / T).

    Optimised over log T (so T stays positive) with L-BFGS; the NLL is convex in 1 / T, so there is one optimum.
    Log-probabilities work as logits (softmax ignores a per-row constant).

    Args:
        logits: [clips, classes] array.
        labels: true class id per clip.
        max_iter: L-BFGS iterations.

    Returns:
        float T (above 1: the model was over-confident; below 1: under-confident), within [0.01, 100].
    """
    import torch  # here: reading a run's calibration (ser-hf compare, cross-validation reports) needs no torch

    logits = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        raise ValueError("temperature fit diverged (all-correct or all-wrong clips with ever larger logits?)")
    # Labels unrelated to the logits drive T to infinity (uniform scores), perfectly separated ones to 0: keep
    # the scores usable and say so.
    if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        logger.warning("fitted temperature %.3g clipped to [%g, %g]: the validation logits barely predict the labels "
                       "(or separate them perfectly)", temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)
    return float(np.clip(temperature, MIN_TEMPERATURE, MAX_TEMPERATURE))


def fold_temperature_into_classifier(model, temperature):
    """Divide the model's last linear layer by T, so its logits (and every pipeline score) become logits / T.

    The output is an ordinary checkpoint: no custom code, nothing for `pipeline()` to know.
    `config.calibration_temperature` records the T applied, for the record only (nothing reads it back); not
    `config.temperature`, which transformers takes for a text-generation setting and refuses to save.

    Args:
        model: an `*ForAudioClassification` model with a linear `classifier` (wav2vec2, HuBERT, WavLM,
            data2vec-audio, Whisper).
        temperature: T > 0.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    classifier = getattr(model, "classifier", None)
    import torch

    if not isinstance(classifier, torch.nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `classifier` layer to fold a temperature into")
    with torch.no_grad():
        classifier.weight.div_(temperature)
        if classifier.bias is not None:
            classifier.bias.div_(temperature)
    model.config.calibration_temperature = float(temperature)

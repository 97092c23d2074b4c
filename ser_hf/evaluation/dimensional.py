"""Scores of a `--task dimensional` model: CCC, Pearson's r and MSE per dimension, beside the training-mean baseline.

CCC (Lin's concordance correlation coefficient) is the field's headline for arousal / dominance / valence
regression (the MSP-Podcast and IEMOCAP literature, the AVEC challenges): unlike Pearson's r it drops when
predictions are shifted or scaled away from the ratings. A constant prediction scores CCC 0, so the baseline that
matters is an error: the MSE of always predicting the training split's mean (`baseline_mse`), beside the model's.

    metrics = compute_dimensional_metrics(predicted, true, train_mean=target_mean(splits["train"]))
    metrics["ccc"], metrics["ccc_arousal"], metrics["mse"], metrics["baseline_mse"]

Every score is a plain float keyed flat ("ccc_valence", "pearson_valence", "mse_valence"), so the Trainer logs them
and the results file, the tables and the cross-validation read them alike.
"""

import numpy as np

from ser_hf.labels import DIMENSIONS

# Marks a results entry as a dimensional model's (`ser_results.json`: {split: metrics}).
TASK = "dimensional"
# What `metric_for_best_model` and the tables read: the mean CCC over the dimensions.
HEADLINE = "ccc"


def concordance_cc(predicted, true):
    """Lin's concordance correlation coefficient of two 1-D series (population moments).

    Args:
        predicted, true: equal-length sequences of numbers.

    Returns:
        CCC in [-1, 1]: 1 for perfect agreement, 0 for a constant prediction of a varying target. When every value
        of both is one and the same constant the formula is 0 / 0: the agreement is perfect, and 1.0 is returned.

    Raises:
        ValueError: lengths differ, or fewer than 2 values (no variance to agree on).
    """
    p, t = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"CCC of {p.shape} predictions against {t.shape} targets: two equal 1-D series")
    if len(p) < 2:
        raise ValueError("CCC needs at least 2 clips")
    mean_p, mean_t = p.mean(), t.mean()
    covariance = ((p - mean_p) * (t - mean_t)).mean()
    denominator = p.var() + t.var() + (mean_p - mean_t) ** 2
    return 1.0 if denominator == 0 else float(2 * covariance / denominator)


def pearson_r(predicted, true):
    """Pearson's correlation, or None where either series is constant (undefined, and NaN is no JSON)."""
    p, t = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if p.std() == 0 or t.std() == 0:
        return None
    return float(np.corrcoef(p, t)[0, 1])


def compute_dimensional_metrics(predicted, true, names=DIMENSIONS, train_mean=None):
    """CCC, Pearson's r and MSE of each dimension and their means, and the training-mean baseline.

    Args:
        predicted, true: (clips, dimensions) arrays, columns in `names` order, targets in [0, 1].
        names: the dimension names in column order (a model's id2label).
        train_mean: the mean target of each dimension in the training split; adds `baseline_mse` (and per
            dimension) of predicting it for every clip. The baseline's CCC is 0 by definition.

    Returns:
        dict: "task", "dimensions" (names), "num_examples", "ccc" (mean), "ccc_<name>", "pearson" (mean over the
        dimensions where it is defined, or None), "pearson_<name>" (None where undefined), "mse" (mean), "mse_<name>",
        "mean_predicted_<name>" and "mean_true_<name>", and with `train_mean` "baseline_ccc" (0.0), "baseline_mse",
        "baseline_mse_<name>".
    """
    predicted, true = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if predicted.shape != true.shape or predicted.ndim != 2 or predicted.shape[1] != len(names):
        raise ValueError(f"{predicted.shape} predictions for {true.shape} targets of {len(names)} dimensions")
    result = {"task": TASK, "dimensions": list(names), "num_examples": int(len(true))}
    for i, name in enumerate(names):
        result[f"ccc_{name}"] = concordance_cc(predicted[:, i], true[:, i])
        result[f"pearson_{name}"] = pearson_r(predicted[:, i], true[:, i])
        result[f"mse_{name}"] = float(np.mean((predicted[:, i] - true[:, i]) ** 2))
        result[f"mean_predicted_{name}"] = float(predicted[:, i].mean())
        result[f"mean_true_{name}"] = float(true[:, i].mean())
    result[HEADLINE] = float(np.mean([result[f"ccc_{name}"] for name in names]))
    defined = [result[f"pearson_{name}"] for name in names if result[f"pearson_{name}"] is not None]
    result["pearson"] = float(np.mean(defined)) if defined else None
    result["mse"] = float(np.mean([result[f"mse_{name}"] for name in names]))
    if train_mean is not None:
        constant = np.asarray(train_mean, dtype=np.float64)[None, :]
        per = ((true - constant) ** 2).mean(axis=0)
        result["baseline_ccc"] = 0.0
        result.update({f"baseline_mse_{name}": float(per[i]) for i, name in enumerate(names)})
        result["baseline_mse"] = float(per.mean())
    return result


def is_dimensional(metrics):
    """Whether a results entry (`ser_results.json`'s per split) is a dimensional model's."""
    return isinstance(metrics, dict) and metrics.get("task") == TASK


def flat_scores(metrics):
    """The model's float scores in `compute_dimensional_metrics`' dict (what the Trainer logs): CCC, Pearson's r
    (where defined) and MSE; no names, means or baselines (constants that would only crowd the log)."""
    return {key: float(value) for key, value in metrics.items() if value is not None
            and key.split("_")[0] in ("ccc", "pearson", "mse")}


def make_dimensional_compute_metrics(names=DIMENSIONS):
    """A `compute_metrics` for `transformers.Trainer` on a regression model: `flat_scores` of the evaluation split.

    Args:
        names: the model's outputs in id order.

    Returns:
        `f(EvalPrediction) -> {"ccc", "ccc_<name>", "pearson_<name>", "mse", ...}` (the Trainer adds `eval_`).
    """
    def compute_metrics(eval_pred):
        predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        if isinstance(predictions, (tuple, list)):
            predictions = predictions[0]
        return flat_scores(compute_dimensional_metrics(predictions, label_ids, names))

    return compute_metrics

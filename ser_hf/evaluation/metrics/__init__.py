"""Evaluation metrics: UA, WA, macro-F1, per-class recall and confusion matrix.

The scores live in an `evaluate` metric module (`ser_metrics.py` beside this file) loaded by path, which works
offline. `compute_ser_metrics` adds the two reference points every SER result should be read against
(majority-class accuracy and chance UA); `make_compute_metrics` adapts it to `transformers.Trainer`.
"""

import functools
import re
from collections import Counter
from pathlib import Path

import numpy as np

SER_METRICS_PATH = Path(__file__).with_name("ser_metrics.py")
# Every run and evaluation writes its scores here: {split: metrics}.
RESULTS_FILE = "ser_results.json"


@functools.lru_cache(maxsize=1)
def load_ser_metric():
    """Load the SER `evaluate` metric module from its local path (no network access).

    The instance is cached: `evaluate.load` copies and imports the script, which is worth doing once per
    process. It keeps its buffers in memory, so computing writes no Arrow cache files and concurrent
    processes (DDP ranks, parallel runs) cannot collide on evaluate's default experiment file names.

    Returns:
        evaluate.EvaluationModule: call `.compute(predictions=..., references=..., num_labels=...)`.
    """
    # Imported here: `import evaluate` pulls in transformers' pipelines and takes seconds.
    import evaluate

    return evaluate.load(str(SER_METRICS_PATH), keep_in_memory=True)


def compute_ser_metrics(predictions, references, label_names):
    """Score predicted label ids against reference ids.

    Args:
        predictions: predicted label ids (sequence or 1-D array of int).
        references: reference label ids, same length.
        label_names: all label names in id order; fixes the number of classes.

    Returns:
        dict with `wa`, `ua`, `macro_f1` (floats; `ua` and `macro_f1` averaged over the classes present in
        `references`), `per_class_recall` (list over all labels, `None` for an absent class),
        `confusion_matrix` (list of lists, rows = true class), `majority_baseline_wa` (the accuracy of always
        predicting the most frequent reference class) and `chance_ua` (1 / number of classes present, the
        UA of any constant or random predictor).
    """
    references = np.asarray(references).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    if references.shape != predictions.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {references.shape[0]} references.")
    result = load_ser_metric().compute(
        predictions=predictions.tolist(), references=references.tolist(), num_labels=len(label_names)
    )
    counts = Counter(references.tolist())
    result["majority_baseline_wa"] = max(counts.values()) / len(references)
    result["chance_ua"] = 1.0 / len(counts)
    return result


def metric_key(label_name):
    """Turn a label name into a metric-key fragment: `recall_<key>` must be a safe, space-free log key.

    Args:
        label_name: an emotion label such as `"angry"` or `"angry (high)"`.

    Returns:
        the name with every run of characters other than letters, digits, `_` and `-` replaced by `_`.
    """
    return re.sub(r"[^0-9A-Za-z_-]+", "_", str(label_name)).strip("_")


def make_compute_metrics(label_names, on_predictions=None):
    """Build a `compute_metrics` function for `transformers.Trainer`.

    Args:
        label_names: label names in id order (as in `config.id2label`).
        on_predictions: optional `f(predicted_ids, label_ids)` called at every evaluation, e.g.
            `TrainingDiagnostics.record` (the Trainer passes only scalar metrics to callbacks).

    Returns:
        A function taking an `EvalPrediction` and returning flat float scores: `ua`, `wa`, `macro_f1` and
        `recall_<label>` for each class present in the evaluation labels. Classes absent from the evaluation
        split are left out rather than logged as NaN, because NaN makes `eval_results.json` invalid JSON.
        Trainer prefixes the keys with `eval_`.
    """
    keys = [metric_key(name) for name in label_names]
    if len(set(keys)) != len(keys) or not all(keys):
        raise ValueError(f"Label names {list(label_names)} do not give distinct metric keys: {keys}")

    def compute_metrics(eval_pred):
        logits = eval_pred.predictions
        # Models asked for hidden states / attentions return a tuple whose first element is the logits.
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        label_ids = eval_pred.label_ids
        if isinstance(label_ids, (tuple, list)):
            label_ids = label_ids[0]
        predictions = np.asarray(logits).argmax(axis=-1)
        if on_predictions is not None:
            on_predictions(predictions, label_ids)
        scores = compute_ser_metrics(predictions, label_ids, label_names)
        flat = {name: float(scores[name]) for name in ("ua", "wa", "macro_f1")}
        for key, recall in zip(keys, scores["per_class_recall"]):
            if recall is not None:
                flat[f"recall_{key}"] = float(recall)
        return flat

    return compute_metrics


def compute_ser_metrics_from_confusion(confusion, label_names):
    """`compute_ser_metrics` of the clips a confusion matrix counts (rows = true class), e.g. one summed over folds.

    Args:
        confusion: square matrix of counts, rows = true class, columns = predicted class.
        label_names: label names in id order.
    """
    cm = np.asarray(confusion, dtype=int)
    classes = np.arange(len(cm))
    references = np.repeat(classes, cm.sum(axis=1))
    predictions = np.concatenate([np.repeat(classes, row) for row in cm])
    return compute_ser_metrics(predictions, references, label_names)

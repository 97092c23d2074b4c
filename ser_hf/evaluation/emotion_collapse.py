"""Emotion x intensity labels scored as emotions, to compare flat and multi-task models on one footing.

A 21-label CREMA-D model ("angry_hi", ..., "neutral_xx") or a RAVDESS/demo model on emotion_intensity labels
("happy_strong") predicts an emotion too: its label's emotion. Scoring those collapsed predictions on the emotions
gives the UA that stands beside a 6- or 8-emotion model and a `--task multitask` model on the same folds.
Read from what every run writes: fold_k/predictions_<split>.csv (true, predicted per clip).
"""

import csv

from ser_hf.evaluation.crossval import fold_dir, mean_std
from ser_hf.evaluation.metrics import compute_ser_metrics


def emotion_of(label, emotions):
    """The emotion of a label: the label itself when it is one, else the emotion it starts with ("angry_hi").

    Raises:
        ValueError: the label starts with none of `emotions`.
    """
    if label in emotions:
        return label
    for emotion in sorted(emotions, key=len, reverse=True):  # the longest match: no emotion is a prefix of another
        if label.startswith(f"{emotion}_"):
            return emotion
    raise ValueError(f"label {label!r} names none of the emotions {list(emotions)}")


def collapsed_metrics(true, predicted, emotions):
    """SER metrics (UA, WA, macro-F1, baselines) of label predictions collapsed to emotions.

    Args:
        true, predicted: label names per clip (emotion x intensity or plain emotions).
        emotions: the emotion names, in the order the confusion matrix takes.

    Returns:
        `compute_ser_metrics` output plus num_examples.
    """
    emotions = list(emotions)
    ids = {name: i for i, name in enumerate(emotions)}
    metrics = compute_ser_metrics([ids[emotion_of(p, emotions)] for p in predicted],
                                  [ids[emotion_of(t, emotions)] for t in true], emotions)
    metrics["num_examples"] = len(true)
    return metrics


def collapsed_cv(root, folds, emotions, split="validation"):
    """Every fold of a cross-validation scored on emotions, and their mean and std over folds.

    Args:
        root: a `ser-hf cv` output dir.
        folds: the folds to read (each fold_k/predictions_<split>.csv).
        emotions: the emotion names.
        split: the held-out split.

    Returns:
        {"folds": {fold: metrics}, "summary": {metric: {"mean", "std"}}}
    """
    per_fold = {}
    for fold in folds:
        with open(fold_dir(root, fold) / f"predictions_{split}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        per_fold[fold] = collapsed_metrics([r["true"] for r in rows], [r["predicted"] for r in rows], emotions)
    return {"folds": per_fold, "summary": mean_std(list(per_fold.values()), ("ua", "wa", "macro_f1"))}

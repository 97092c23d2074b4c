"""Pseudo-labels: a trained model labels the unlabeled pool, the confident clips become training rows.

    scored = score_pool(model_dir, pool, batch_size=16)
    added = select_confident(scored, threshold=0.9)
    summary = pseudo_label_summary(scored, added, label_names, threshold=0.9)
    train_rows = training_rows(added)

Scoring is the pipeline-faithful batched inference (`classify_files`): the pseudo-label of a clip is what
`pipeline("audio-classification")` would answer for it.
"""

from pathlib import Path

import numpy as np

from ser_hf.evaluation.metrics import RESULTS_FILE
from ser_hf.inference.classify import classify_files, load_classifier
from ser_hf.training.checkpoints import latest_intact_checkpoint
from ser_hf.training.output_dir import finished_run

# Where a pseudo-labelled run keeps its rounds before the last (the last is the output dir itself).
ROUND_DIR = "pseudo_round_{}"


def round_worth_keeping(round_dir):
    """Whether an intermediate round finished (model and results written) or saved an intact checkpoint."""
    round_dir = Path(round_dir)
    return (finished_run(round_dir) and (round_dir / RESULTS_FILE).is_file()) or \
        latest_intact_checkpoint(round_dir) is not None


def has_rounds_to_resume(output_dir):
    """Whether a run's output dir holds an intermediate pseudo-label round that a resume would reuse or continue.

    A run killed early in its last round has no checkpoint in its output dir yet, but its finished round 0 is
    worth hours: cross-validation resumes such a fold instead of retraining round 0.
    """
    return any(round_worth_keeping(d) for d in Path(output_dir).glob(ROUND_DIR.format("*")) if d.is_dir())


def score_pool(model_dir, pool, batch_size=16, device=None):
    """Classify every pool clip with a trained model.

    Args:
        model_dir: a finished run's output dir.
        pool: rows with "path" (scanned: `ser_hf.data.pseudo_pool.scan_pool`).
        batch_size: clips per forward pass.
        device: e.g. "cpu"; None lets the pipeline choose.

    Returns:
        The pool rows with "label" (the top class, None on error), "confidence" (its score) and "error" added.
    """
    classifier = load_classifier(model_dir, device=device)
    scored = classify_files(classifier, [row["path"] for row in pool], top_k=1, batch_size=batch_size)
    return [{**row, "label": s["label"], "confidence": s["score"], "error": s["error"]} for row, s in zip(pool, scored)]


def select_confident(scored, threshold):
    """The scored clips whose top score is at least `threshold` (clips that could not be classified never are)."""
    return [row for row in scored if row["error"] is None and row["confidence"] >= threshold]


def training_rows(selected):
    """Rows for the training split: path, speaker, pseudo-label and scanned duration, nothing held back."""
    return [{"path": row["path"], "speaker": row.get("speaker") or "", "label": row["label"],
             "duration": row["duration"]} for row in selected]


def _stats(values):
    return (round(float(np.mean(values)), 4), round(float(np.min(values)), 4)) if values else (None, None)


def pseudo_label_summary(scored, selected, label_names, threshold):
    """Per class: clips added, their mean and lowest confidence (and, with held-back labels, how many are right).

    Args:
        scored: `score_pool` output.
        selected: `select_confident` output.
        label_names: class names in id order.
        threshold: the confidence threshold used.

    Returns:
        dict: threshold, pool (clips scored), errors, added, per_class {class: {added, mean_confidence,
        min_confidence[, correct]}}; with held-back labels (`--pseudo_pool_fold`) also accuracy_added (of the
        added clips' pseudo-labels) and accuracy_pool (of the model on the whole pool).
    """
    known = [row for row in scored if "held_back_label" in row and row["error"] is None]
    per_class = {}
    for name in label_names:
        mine = [row for row in selected if row["label"] == name]
        mean, low = _stats([row["confidence"] for row in mine])
        per_class[name] = {"added": len(mine), "mean_confidence": mean, "min_confidence": low}
        if known:
            per_class[name]["correct"] = sum(row.get("held_back_label") == name for row in mine)
    summary = {"threshold": threshold, "pool": len(scored), "errors": sum(row["error"] is not None for row in scored),
               "added": len(selected), "per_class": per_class}
    if known:  # a measurement on a labeled fold: how right the pseudo-labels were
        right = [row for row in selected if row.get("held_back_label") == row["label"]]
        summary["accuracy_added"] = round(len(right) / len(selected), 4) if selected else None
        summary["accuracy_pool"] = round(sum(row["held_back_label"] == row["label"] for row in known) / len(known), 4)
    return summary



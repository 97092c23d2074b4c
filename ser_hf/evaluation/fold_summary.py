"""Scores over speaker folds: each finished fold's results, mean +- std, and the pooled confusion matrix.

UA on one held-out fold of 4 actors differs from the next fold's by several points (the demo model: 48.8 to
71.1 % over its 6 folds), so a number worth comparing is a mean +- std over every speaker fold. Fold k of a
cross-validation lives in `<root>/fold_<k>` (`ser_hf.experiments.crossval` trains it); this module reads them.
"""

import csv
import json
from pathlib import Path

import numpy as np

from ser_hf.evaluation.calibration import calibration_from_rows, ece_from_bins, pool_bins
from ser_hf.evaluation.dimensional import compute_dimensional_metrics, is_dimensional
from ser_hf.evaluation.metrics import RESULTS_FILE, compute_ser_metrics_from_confusion
from ser_hf.training.output_dir import finished_run

METRICS = ("ua", "wa", "macro_f1")


# Scores a fold may carry beside its emotion scores, summarised the same way over folds: the intensity head of
# `--task multitask`, and an emotion x intensity model read as bare emotions (each has its own label_names).
SIDE_SCORES = ("intensity", "emotions")


CV_RESULTS_FILE = "crossval_results.json"


CV_TABLE_FILE = "crossval_results.md"


def fold_dir(root, fold):
    """The output dir of fold `fold` under the cross-validation root."""
    return Path(root) / f"fold_{fold}"


def fold_finished(path):
    """A fold is done when its final model and its results file are both there (results are written last)."""
    return finished_run(path) and (Path(path) / RESULTS_FILE).is_file()


def mean_std(rows, metrics=METRICS):
    """{metric: {"mean", "std"}} over rows (population std, as over a fixed set of folds)."""
    return {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))}
            for m in metrics}


def collect_fold_results(root, folds, split="validation"):
    """Each finished fold's metrics on `split` (from its ser_results.json), with the speakers it held out and its ECE.

    A `--task dimensional` fold has no ECE; it carries its clips' "true" and "predicted" values instead (from its
    predictions CSV), which `summarize` pools.
    """
    results = {}
    for k in folds:
        path = fold_dir(root, k)
        if not fold_finished(path):
            continue
        metrics = json.loads((path / RESULTS_FILE).read_text())[split]
        with open(path / f"predictions_{split}.csv") as handle:
            rows = list(csv.DictReader(handle))
        speakers = sorted({row["speaker"] for row in rows})
        if is_dimensional(metrics):
            names = metrics["dimensions"]
            values = {kind: [[float(row[f"{prefix}_{name}"]) for name in names] for row in rows]
                      for kind, prefix in (("true", "true"), ("predicted", "pred"))}
            results[k] = {**metrics, "speakers": speakers, "values": values}
            continue
        # From the per-clip scores (the pipeline's), so folds written before ECE was recorded get it too.
        calibration = calibration_from_rows(rows)
        results[k] = {**metrics, "speakers": speakers, "ece": calibration.pop("ece"), "calibration": calibration}
    return results


def summarize(fold_results, label_names, baseline=None):
    """Per-fold rows, mean +- std, and the pooled confusion matrix of all held-out clips.

    Args:
        fold_results: {fold: SER metrics (ua, wa, macro_f1, confusion_matrix, num_examples) + speakers, and
            optionally `ece` and `calibration` (reliability bins) from `collect_fold_results`}.
        label_names: label names in id order.
        baseline: optional {fold: SVM metrics on the same fold} to report beside each fold.

    Returns:
        dict with `folds` (one row per fold), `summary` (mean/std per metric), `pooled` (metrics of the summed
        confusion matrix: every clip scored once by the model that never saw its speaker), the same for
        `baseline` when given, `calibration` (ECE mean/std over folds, pooled ECE and bins) when every fold
        has it, and `intensity` / `emotions` (`SIDE_SCORES`: folds, summary, pooled) when every fold has them.
    """
    folds = sorted(fold_results)
    if all(is_dimensional(fold_results[k]) for k in folds):
        return summarize_dimensional(fold_results)
    rows = [{"fold": k, "speakers": fold_results[k].get("speakers", []),
             "num_examples": int(fold_results[k]["num_examples"]),
             **{m: float(fold_results[k][m]) for m in METRICS}} for k in folds]
    pooled_cm = np.sum([fold_results[k]["confusion_matrix"] for k in folds], axis=0).astype(int).tolist()
    report = {"labels": list(label_names), "folds": rows, "summary": mean_std(rows),
              "pooled": compute_ser_metrics_from_confusion(pooled_cm, label_names)}
    if all("macro_f1_union" in fold_results[k] for k in folds):  # EmoBox's macro-F1 (see ser_metrics.py)
        for row in rows:
            row["macro_f1_union"] = float(fold_results[row["fold"]]["macro_f1_union"])
        report["summary"]["macro_f1_union"] = mean_std(rows, ("macro_f1_union",))["macro_f1_union"]
    if all("calibration" in fold_results[k] for k in folds):  # ECE per fold, mean +- std, and pooled bins
        for row in rows:
            row["ece"] = float(fold_results[row["fold"]]["ece"])
        bins = pool_bins([fold_results[k]["calibration"]["bins"] for k in folds])
        report["calibration"] = {**mean_std(rows, ("ece",))["ece"], "pooled_ece": ece_from_bins(bins), "bins": bins}
    for key in SIDE_SCORES:
        if all(fold_results[k].get(key) for k in folds):
            report[key] = _summarize_side_scores({k: fold_results[k][key] for k in folds})
    if baseline:
        shared = [k for k in folds if k in baseline]
        base_rows = [{"fold": k, **{m: float(baseline[k][m]) for m in METRICS}} for k in shared]
        report["baseline"] = {"name": "SVM on MFCC + prosody statistics", "folds": base_rows,
                              "summary": mean_std(base_rows) if base_rows else {}}
    return report


def _summarize_side_scores(per_fold):
    """{fold: metrics with label_names} -> per-fold rows, mean +- std and the pooled metrics of their clips."""
    names = next(iter(per_fold.values()))["label_names"]
    rows = [{"fold": k, "num_examples": int(m["num_examples"]), **{name: float(m[name]) for name in METRICS}}
            for k, m in sorted(per_fold.items())]
    pooled_cm = np.sum([m["confusion_matrix"] for m in per_fold.values()], axis=0).astype(int).tolist()
    return {"labels": list(names), "folds": rows, "summary": mean_std(rows),
            "pooled": compute_ser_metrics_from_confusion(pooled_cm, names)}


def dimensional_metrics(names):
    """The scores a dimensional cross-validation summarises per fold: mean CCC, CCC per dimension, MSE."""
    return ("ccc", *(f"ccc_{name}" for name in names), "mse")


def summarize_dimensional(fold_results):
    """`summarize` for `--task dimensional` folds: per-fold CCC and MSE, mean +- std, and the pooled scores.

    Args:
        fold_results: {fold: `compute_dimensional_metrics` + speakers + values ({"true", "predicted"}: the fold's
            clips, from `collect_fold_results`)}.

    Returns:
        dict with `task` ("dimensional"), `labels` (the dimensions), `folds` (one row per fold, with its training-mean
        baseline MSE when recorded), `summary` (mean/std of `dimensional_metrics`), `pooled` (the metrics of every
        held-out clip scored together, each by the model that never heard its speaker).
    """
    folds = sorted(fold_results)
    names = fold_results[folds[0]]["dimensions"]
    metrics = dimensional_metrics(names)
    rows = [{"fold": k, "speakers": fold_results[k].get("speakers", []),
             "num_examples": int(fold_results[k]["num_examples"]),
             **{m: float(fold_results[k][m]) for m in metrics},
             **({"baseline_mse": float(fold_results[k]["baseline_mse"])} if "baseline_mse" in fold_results[k] else {})}
            for k in folds]
    true = np.concatenate([np.asarray(fold_results[k]["values"]["true"], dtype=float).reshape(-1, len(names))
                           for k in folds])
    predicted = np.concatenate([np.asarray(fold_results[k]["values"]["predicted"], dtype=float).reshape(-1, len(names))
                                for k in folds])
    summary = mean_std(rows, metrics + (("baseline_mse",) if all("baseline_mse" in r for r in rows) else ()))
    return {"task": "dimensional", "labels": list(names), "folds": rows, "summary": summary,
            "pooled": compute_dimensional_metrics(predicted, true, names)}

"""The cross-validation report: per-fold table with the SVM beside each fold, mean +- std, pooled confusion matrices
and reliability diagram; for `--task dimensional`, CCC per fold and dimension, mean +- std and a pooled scatter plot."""

import json
from pathlib import Path

import numpy as np

from ser_hf.evaluation.fold_summary import CV_RESULTS_FILE, CV_TABLE_FILE, METRICS, fold_dir
from ser_hf.reporting.dimensional_report import read_dimensional_predictions
from ser_hf.reporting.plots import plot_confusion_matrix, plot_dimension_scatter, plot_reliability_diagram
from ser_hf.storage import write_text_atomic


def _pct(value):
    return f"{100 * value:.1f}"


def pct_mean_std(summary, metric):
    """"63.2 +- 7.3": a metric's mean +- std over folds, in percent (the cross-validation and sweep tables)."""
    return f"{_pct(summary[metric]['mean'])} +- {_pct(summary[metric]['std'])}"


def dimensional_markdown_table(report):
    """The table of a `--task dimensional` cross-validation: CCC per dimension, mean CCC and MSE per fold (beside the
    MSE of predicting the fold's training mean), a mean +- std row, and the pooled scores."""
    names, baseline = report["labels"], "baseline_mse" in report["summary"]
    head = ["fold", "held-out speakers", "clips", *(f"CCC {name}" for name in names), "CCC mean", "MSE"]
    head += ["MSE of the training mean"] if baseline else []
    keys = [*(f"ccc_{name}" for name in names), "ccc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["folds"]:
        cells = [str(row["fold"]), ", ".join(row["speakers"]), str(row["num_examples"]),
                 *(f"{row[key]:.3f}" for key in keys), f"{row['mse']:.4f}"]
        lines.append("| " + " | ".join(cells + ([f"{row['baseline_mse']:.4f}"] if baseline else [])) + " |")
    summary = report["summary"]
    cells = ["**mean +- std**", f"{len(report['folds'])} folds", str(sum(r["num_examples"] for r in report["folds"])),
             *(f"{summary[key]['mean']:.3f} +- {summary[key]['std']:.3f}" for key in keys),
             f"{summary['mse']['mean']:.4f} +- {summary['mse']['std']:.4f}"]
    cells += [f"{summary['baseline_mse']['mean']:.4f} +- {summary['baseline_mse']['std']:.4f}"] if baseline else []
    lines.append("| " + " | ".join(cells) + " |")
    if report.get("emobox_form"):
        lines += ["", emobox_table(report)]
    if report.get("held_out_note"):
        lines.append("\n" + report["held_out_note"])
    if "ensemble" in report:
        e, single = report["ensemble"], report["ensemble"]["single_models"]["ccc"]
        lines.append(f"\nTest fold {e['test_fold']} ({', '.join(e['speakers'])}), held out from every run: one fold "
                     f"model alone CCC {single['mean']:.3f} +- {single['std']:.3f}; the {e['models']} models' averaged "
                     f"values CCC {e['ensemble']['ccc']:.3f}, MSE {e['ensemble']['mse']:.4f}.")
    pooled = report["pooled"]
    lines.append(f"\nPooled over all {pooled['num_examples']} held-out clips: CCC {pooled['ccc']:.3f} ("
                 + ", ".join(f"{name} {pooled[f'ccc_{name}']:.3f}" for name in names)
                 + f"), MSE {pooled['mse']:.4f}. A constant prediction scores CCC 0.")
    return "\n".join(lines)


def markdown_table(report):
    """The cross-validation table: one row per fold and a mean +- std row, the SVM baseline beside each."""
    if report.get("task") == "dimensional":
        return dimensional_markdown_table(report)
    base = {row["fold"]: row for row in report.get("baseline", {}).get("folds", [])}
    head = ["fold", "held-out speakers", "clips", "UA %", "WA %", "macro-F1 %"]
    if base:
        head += ["SVM UA %", "SVM WA %", "SVM macro-F1 %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["folds"]:
        cells = [str(row["fold"]), ", ".join(row["speakers"]), str(row["num_examples"]),
                 *(_pct(row[m]) for m in METRICS)]
        if base:
            cells += [_pct(base[row["fold"]][m]) if row["fold"] in base else "" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    mean = pct_mean_std
    cells = ["**mean +- std**", f"{len(report['folds'])} folds", str(sum(r["num_examples"] for r in report["folds"])),
             *(mean(report["summary"], m) for m in METRICS)]
    if base:
        cells += [mean(report["baseline"]["summary"], m) for m in METRICS]
    lines.append("| " + " | ".join(cells) + " |")
    if report.get("emobox_form"):
        lines += ["", emobox_table(report)]
    if report.get("held_out_note"):
        lines.append("\n" + report["held_out_note"])
    if "ensemble" in report:
        e = report["ensemble"]
        lines.append(f"\nTest fold {e['test_fold']} ({', '.join(e['speakers'])}), held out from every run: one fold model "
                     f"alone UA {mean(e['single_models'], 'ua')} %; the {e['models']} models' averaged probabilities "
                     f"UA {_pct(e['ensemble']['ua'])} %, WA {_pct(e['ensemble']['wa'])} %, "
                     f"macro-F1 {_pct(e['ensemble']['macro_f1'])} %.")
    if "calibration" in report:
        cal = report["calibration"]
        lines.append(f"\nCalibration of the pipeline's top score: ECE {_pct(cal['mean'])} +- {_pct(cal['std'])} % over "
                     f"folds, {_pct(cal['pooled_ece'])} % pooled over all held-out clips (reliability_diagram.png).")
    for key, what in (("emotions", "Scored as emotions (the emotion x intensity labels read as their emotion)"),
                      ("intensity", "Intensity head (clips with an intensity)")):
        if key in report:
            side = report[key]
            lines.append(f"\n{what}: UA {mean(side['summary'], 'ua')} % over folds "
                         f"({', '.join(_pct(row['ua']) for row in side['folds'])}), pooled UA {_pct(side['pooled']['ua'])} "
                         f"% on {sum(row['num_examples'] for row in side['folds'])} clips "
                         f"(chance UA {_pct(side['pooled']['chance_ua'])} %).")
    pooled = report["pooled"]
    lines.append(f"\nPooled over all held-out clips: UA {_pct(pooled['ua'])} %, WA {_pct(pooled['wa'])} %, "
                 f"macro-F1 {_pct(pooled['macro_f1'])} % (chance UA {_pct(pooled['chance_ua'])} %, "
                 f"majority-class WA {_pct(pooled['majority_baseline_wa'])} %).")
    return "\n".join(lines)


def write_crossval_report(root, report):
    """crossval_results.json, crossval_results.md and the pooled confusion matrices (counts, row-normalised)."""
    root = Path(root)
    write_text_atomic(root / CV_RESULTS_FILE, json.dumps(report, indent=2))
    write_text_atomic(root / CV_TABLE_FILE, markdown_table(report) + "\n")
    n = len(report["folds"])
    if report.get("task") == "dimensional":  # predicted against true, every held-out clip of every fold
        split, names = report.get("split", "validation"), report["labels"]
        pairs = [read_dimensional_predictions(fold_dir(root, row["fold"]) / f"predictions_{split}.csv", names)[1:]
                 for row in report["folds"]]
        plot_dimension_scatter(np.concatenate([t for t, _ in pairs]), np.concatenate([p for _, p in pairs]), names,
                               root / "dimensions_scatter.png", title=f"Pooled over {n} speaker folds")
        return root / CV_RESULTS_FILE
    for normalize, name in ((False, "confusion_matrix.png"), (True, "confusion_matrix_normalized.png")):
        plot_confusion_matrix(report["pooled"]["confusion_matrix"], report["labels"], root / name, normalize=normalize,
                              title=f"Pooled over {n} speaker folds" + (" (row-normalised)" if normalize else ""))
    if "calibration" in report:
        plot_reliability_diagram(report["calibration"]["bins"], root / "reliability_diagram.png",
                                 ece=report["calibration"]["pooled_ece"], title=f"Pooled over {n} speaker folds")
    return root / CV_RESULTS_FILE


def emobox_table(report):
    """The table in EmoBox's form: UA, WA, macro-F1 and micro-F1 per fold and their mean (EmoBox reports the mean).

    Two macro-F1s: ours averages over the classes in the references; EmoBox's (sklearn's default) over the classes in
    the references or the predictions, so a class that is predicted but absent from a fold's test file lowers it.
    Micro-F1 of single-label classification is the accuracy (WA).
    """
    head = ["fold", "UA %", "WA %", "macro-F1 % (ours)", "macro-F1 % (EmoBox)", "micro-F1 %"]
    lines = ["EmoBox's form (github.com/emo-box/EmoBox):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["folds"]:
        union = _pct(row["macro_f1_union"]) if "macro_f1_union" in row else "-"
        lines.append(f"| fold_{row['fold'] + 1} | {_pct(row['ua'])} | {_pct(row['wa'])} | {_pct(row['macro_f1'])} | "
                     f"{union} | {_pct(row['wa'])} |")
    summary = report["summary"]
    union = _pct(summary["macro_f1_union"]["mean"]) if "macro_f1_union" in summary else "-"
    lines.append(f"| **mean** | {_pct(summary['ua']['mean'])} | {_pct(summary['wa']['mean'])} | "
                 f"{_pct(summary['macro_f1']['mean'])} | {union} | {_pct(summary['wa']['mean'])} |")
    return "\n".join(lines)

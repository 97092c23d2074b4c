"""The cross-validation report: per-fold table with the SVM beside each fold, mean +- std, pooled confusion matrices
and reliability diagram."""

import json
from pathlib import Path

from ser_hf.evaluation.fold_summary import CV_RESULTS_FILE, CV_TABLE_FILE, METRICS
from ser_hf.reporting.plots import plot_confusion_matrix, plot_reliability_diagram


def _pct(value):
    return f"{100 * value:.1f}"


def markdown_table(report):
    """The cross-validation table: one row per fold and a mean +- std row, the SVM baseline beside each."""
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
    mean = lambda s, m: f"{_pct(s[m]['mean'])} +- {_pct(s[m]['std'])}"  # noqa: E731
    cells = ["**mean +- std**", f"{len(report['folds'])} folds", str(sum(r["num_examples"] for r in report["folds"])),
             *(mean(report["summary"], m) for m in METRICS)]
    if base:
        cells += [mean(report["baseline"]["summary"], m) for m in METRICS]
    lines.append("| " + " | ".join(cells) + " |")
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
    (root / CV_RESULTS_FILE).write_text(json.dumps(report, indent=2))
    (root / CV_TABLE_FILE).write_text(markdown_table(report) + "\n")
    n = len(report["folds"])
    for normalize, name in ((False, "confusion_matrix.png"), (True, "confusion_matrix_normalized.png")):
        plot_confusion_matrix(report["pooled"]["confusion_matrix"], report["labels"], root / name, normalize=normalize,
                              title=f"Pooled over {n} speaker folds" + (" (row-normalised)" if normalize else ""))
    if "calibration" in report:
        plot_reliability_diagram(report["calibration"]["bins"], root / "reliability_diagram.png",
                                 ece=report["calibration"]["pooled_ece"], title=f"Pooled over {n} speaker folds")
    return root / CV_RESULTS_FILE

"""What a pseudo-labelling run reports: the card's "Pseudo-labels" section, pseudo_rounds.json, and a
cross-validation's round-0-against-final comparison."""

import csv
import json
from pathlib import Path

import numpy as np

from ser_hf.corpora.files import corpus_relative
from ser_hf.storage import atomic_write, write_text_atomic

PSEUDO_ROUNDS_FILE = "pseudo_rounds.json"


def _pct(value):
    return "" if value is None else f"{100 * value:.1f} %"


def _per_class_table(summary):
    correct = any("correct" in entry for entry in summary["per_class"].values())
    lines = ["| class | clips added | mean confidence | lowest confidence |" + (" correct (held-back labels) |"
                                                                            if correct else ""),
             "|---|---|---|---|" + ("---|" if correct else "")]
    for name, entry in summary["per_class"].items():
        mean, low = entry["mean_confidence"], entry["min_confidence"]
        lines.append(f"| {name} | {entry['added']} | {'' if mean is None else f'{mean:.3f}'} | "
                     f"{'' if low is None else f'{low:.3f}'} |" + (f" {entry['correct']} |" if correct else ""))
    return lines


def pseudo_card_section(report):
    """The model card's "Pseudo-labels" section.

    Args:
        report: {"pool": {"description", "files", "excluded_by_scan"}, "threshold", "rounds": [{"round", "added",
            "results": {split: {"ua", ...}}, "summary" (rounds >= 1)}, ...]}, the last round this model's.

    Returns:
        Markdown with its own heading.
    """
    pool, rounds = report["pool"], report["rounds"]
    last = rounds[-1]
    splits = list(rounds[0]["results"])
    lines = [
        "## Pseudo-labels", "",
        f"This model was trained on the labeled clips plus **pseudo-labelled** ones. Unlabeled pool: "
        f"{pool['description']}: {pool['files']} files, {pool['excluded_by_scan']} excluded by the audio scan. "
        f"In each round the previous round's model classified the pool (the pipeline's scores) and every clip whose "
        f"top score was at least {report['threshold']:g} joined the training clips with the predicted label. Each "
        f"round trains a fresh model from the same initial weights and seed, so round 0 (labeled clips only) is the "
        f"baseline for this model, evaluated on the same speakers. Rounds: {len(rounds) - 1}. "
        "No pool file is a labeled clip (by path or bytes) or named as an evaluation speaker's.", "",
        "| round | pseudo-labelled clips in training | " + " | ".join(f"{s} UA" for s in splits) + " |",
        "|---|---|" + "---|" * len(splits),
    ]
    for entry in rounds:
        name = f"{entry['round']}" + (" (labeled only)" if entry["round"] == 0 else "") + \
            (" (this model)" if entry is last else "")
        lines.append(f"| {name} | {entry['added']} | "
                     + " | ".join(_pct(entry["results"].get(s, {}).get("ua")) for s in splits) + " |")
    if last["round"] > 0:
        summary = last["summary"]
        lines += ["", f"Clips added in the last round, per class ({summary['added']} of {summary['pool']} pool clips; "
                  f"{summary['errors']} could not be classified):", ""] + _per_class_table(summary)
        if summary.get("accuracy_added") is not None:
            lines += ["", f"The pool's labels were held back and used only here: {_pct(summary['accuracy_added'])} of "
                      f"the added pseudo-labels are right; the labeling model was right on "
                      f"{_pct(summary['accuracy_pool'])} of the whole pool."]
    return "\n".join(lines)


def write_pseudo_report(output_dir, report):
    """pseudo_rounds.json and pseudo_labels.md (the card section) in the output dir.

    Returns:
        The JSON file's Path.
    """
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / "pseudo_labels.md", pseudo_card_section(report) + "\n")
    path = output_dir / PSEUDO_ROUNDS_FILE
    write_text_atomic(path, json.dumps(report, indent=2))
    return path


def pseudo_crossval_summary(fold_dirs, split="validation", metric="ua"):
    """Round 0 against the final round over cross-validation folds, with the per-fold paired difference.

    Args:
        fold_dirs: {fold: its output dir}; folds without pseudo_rounds.json are left out.
        split, metric: what to compare.

    Returns:
        {"folds": [{"fold", "round_0", "final", "added", "accuracy_added"}], "round_0", "final", "difference":
        {"mean", "std"} each (population std over folds)}, or None when no fold pseudo-labelled.
    """
    rows = []
    for fold, path in sorted(fold_dirs.items()):
        file = Path(path) / PSEUDO_ROUNDS_FILE
        if not file.is_file():
            continue
        rounds = json.loads(file.read_text())["rounds"]
        rows.append({"fold": fold, "round_0": rounds[0]["results"][split][metric],
                     "final": rounds[-1]["results"][split][metric], "added": rounds[-1]["added"],
                     "accuracy_added": rounds[-1].get("summary", {}).get("accuracy_added")})
    if not rows:
        return None

    def spread(values):
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    return {"split": split, "metric": metric, "folds": rows, "round_0": spread([r["round_0"] for r in rows]),
            "final": spread([r["final"] for r in rows]),
            "difference": spread([r["final"] - r["round_0"] for r in rows])}


def pseudo_crossval_markdown(summary):
    """The cross-validation comparison as a markdown table with a mean +- std line."""
    metric = summary["metric"].upper()
    lines = [f"| fold | {metric} round 0 (labeled only) | {metric} final | difference | clips added | "
             "added labels right |", "|---|---|---|---|---|---|"]
    for r in summary["folds"]:
        lines.append(f"| {r['fold']} | {_pct(r['round_0'])} | {_pct(r['final'])} | "
                     f"{100 * (r['final'] - r['round_0']):+.1f} | {r['added']} | {_pct(r['accuracy_added'])} |")
    m = {k: summary[k] for k in ("round_0", "final", "difference")}
    lines.append(f"| **mean +- std** | {100 * m['round_0']['mean']:.1f} +- {100 * m['round_0']['std']:.1f} | "
                 f"{100 * m['final']['mean']:.1f} +- {100 * m['final']['std']:.1f} | "
                 f"{100 * m['difference']['mean']:+.1f} +- {100 * m['difference']['std']:.1f} | | |")
    return "\n".join(lines)


def write_pseudo_labels_csv(scored, threshold, path, relative_to=None):
    """One row per pool clip: path, pseudo-label, confidence, whether it was added, error (and held-back label).

    Args:
        scored: `score_pool` output.
        threshold: the confidence threshold (decides the "added" column).
        path: the CSV to write.
        relative_to: write paths relative to this folder (the pool folder), as the run's other CSVs do.

    Returns:
        The path as a Path.
    """
    held_back = any("held_back_label" in row for row in scored)
    columns = ["path", "label", "confidence", "added", "error"] + (["held_back_label"] if held_back else [])
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in scored:
            added = row["error"] is None and row["confidence"] >= threshold
            values = [corpus_relative(row["path"], relative_to) if relative_to else row["path"], row["label"] or "",
                      "" if row["confidence"] is None else f"{row['confidence']:.4f}", int(added), row["error"] or ""]
            writer.writerow(values + ([row.get("held_back_label", "")] if held_back else []))
    return Path(path)

"""The sweep's report: one table per corpus in EmoBox's form (UA / WA / macro-F1 mean +- std over folds, one row per
setting) and, where the probe wrote them, per-layer tables (each layer's validation UA, mean over folds)."""

import json
from pathlib import Path

import numpy as np

from ser_hf.evaluation.fold_summary import METRICS, fold_dir
from ser_hf.reporting.crossval_report import pct_mean_std
from ser_hf.reporting.probe_report import PROBE_LAYERS_STEM
from ser_hf.storage import write_text_atomic

SWEEP_RESULTS_FILE = "sweep_results.json"
SWEEP_TABLE_FILE = "sweep_results.md"
_HEADS = {"ua": "UA %", "wa": "WA %", "macro_f1": "macro-F1 %"}


def _layers(root, folds):
    """[{layer, name, ua: {mean, std}, folds}] from the folds' probe_layers.json, or None where none wrote one."""
    per_fold = []
    for k in folds:
        path = fold_dir(root, k) / f"{PROBE_LAYERS_STEM}.json"
        if path.is_file():
            per_fold.append(json.loads(path.read_text()))
    if not per_fold:
        return None
    rows = []
    for i, row in enumerate(per_fold[0]):
        scores = [fold[i]["validation_ua"] for fold in per_fold if i < len(fold) and "validation_ua" in fold[i]]
        rows.append({"layer": row["layer"], "name": row["name"], "folds": len(scores),
                     "ua": {"mean": float(np.mean(scores)), "std": float(np.std(scores))}})
    return rows


def sweep_summary(settings, command=None):
    """The JSON-able summary of a sweep.

    Args:
        settings: {slug: {"values", "corpus", "data_dir", "root", "report" (a cross-validation report or None),
            "status" ({fold: status})}}.
        command: the sweep's command line (its password hidden).

    Returns:
        {"command", "settings": {slug: {values, corpus, data_dir, folds, summary, status, layers}}}
    """
    out = {}
    for slug, item in settings.items():
        report = item["report"] or {}
        out[slug] = {"values": item["values"], "corpus": item["corpus"], "data_dir": item["data_dir"],
                     "folds": {str(row["fold"]): {m: row[m] for m in METRICS if m in row}
                               for row in report.get("folds", [])},
                     "summary": report.get("summary"), "status": {str(k): s for k, s in item["status"].items()},
                     "layers": _layers(item["root"], [row["fold"] for row in report.get("folds", [])])}
    return {"command": command, "settings": out}


def sweep_markdown(summary):
    """One EmoBox-form table per corpus (a row per setting), then the per-layer tables."""
    lines = ["# Sweep results", ""]
    if summary.get("command"):
        lines += [f"`{summary['command']}`", ""]
    by_corpus = {}
    for slug, item in summary["settings"].items():
        by_corpus.setdefault((item["corpus"], item["data_dir"]), []).append((slug, item))
    for (corpus, data_dir), items in by_corpus.items():
        lines += [f"## {corpus} ({data_dir})", "", "Mean +- std over speaker folds, each fold's held-out speakers "
                  "(EmoBox's form):", "", "| setting | folds | " + " | ".join(_HEADS[m] for m in METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        for slug, item in items:
            done = len(item["folds"])
            cells = [pct_mean_std(item["summary"], m) for m in METRICS] if item["summary"] else ["-"] * len(METRICS)
            failed = sum(s != "finished" for s in item["status"].values())
            lines.append(f"| {slug} | {done}{f' ({failed} failed)' if failed else ''} | " + " | ".join(cells) + " |")
        lines.append("")
        for slug, item in items:
            if item["layers"]:
                lines += [f"Per-layer probe of {slug} (validation UA %, mean +- std over "
                          f"{item['layers'][0]['folds']} folds):", "", "| hidden state | what | UA % |",
                          "|---|---|---|"]
                lines += [f"| {row['layer']} | {row['name']} | {pct_mean_std(row, 'ua')} |" for row in item["layers"]]
                lines.append("")
    lines.append("Each setting's folds, pooled scores and confusion matrices: <setting>/crossval_results.md.")
    return "\n".join(lines)


def write_sweep_report(root, settings, command=None):
    """sweep_results.json and sweep_results.md in the sweep's output dir (see `sweep_summary`)."""
    root = Path(root)
    summary = sweep_summary(settings, command)
    write_text_atomic(root / SWEEP_RESULTS_FILE, json.dumps(summary, indent=2))
    write_text_atomic(root / SWEEP_TABLE_FILE, sweep_markdown(summary) + "\n")
    return root / SWEEP_RESULTS_FILE

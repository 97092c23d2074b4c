"""Two cross-validations compared on the same folds and the same clips: is B's UA really different from A's?

Fold-to-fold spread on 4-actor folds is larger than most settings' effects, so a difference of means alone says
little. Here each fold's UA difference is paired (same held-out speakers, same clips), tested over folds (paired
t-test, Wilcoxon signed-rank), and the pooled UA difference gets a paired bootstrap confidence interval: the same
resampled clips score A and B. Runs whose folds, held-out speakers, clips or labels differ are refused, naming
the first difference, since a comparison across different data measures the data as much as the setting.

Everything is read from what `ser-hf cv` writes: crossval_results.json (the folds it reported) and each
fold_k/predictions_validation.csv (one row per held-out clip: path, speaker, true, predicted, confidence).
"""

import csv
import json
from pathlib import Path

import numpy as np
from scipy import stats

from ser_hf.errors import UsageError
from ser_hf.evaluation.fold_summary import CV_RESULTS_FILE, fold_dir, mean_std

DEFAULT_RESAMPLES = 2000


def load_cv_run(root, split=None):
    """The per-clip predictions of every fold a finished cross-validation reported.

    Args:
        root: a `ser-hf cv` output dir.
        split: which predictions file of each fold; default the split the cross-validation reported (its held-out
            fold: validation, or test under --held_out_split test).

    Returns:
        {"root", "labels", "folds": {fold: {"speakers": sorted list, "clips": {path: row}}}}.

    Raises:
        UsageError: no crossval_results.json, or a reported fold without its predictions file.
    """
    root = Path(root)
    results = root / CV_RESULTS_FILE
    if not results.is_file():
        raise UsageError(f"{results} not found: {root} is not a finished cross-validation (run `ser-hf cv CONFIG "
                         f"--output_dir {root}` to completion first)")
    report = json.loads(results.read_text())
    if report.get("task") == "dimensional":  # its folds hold values, not labels to pair right against wrong
        raise UsageError(f"{root} is a --task dimensional cross-validation: `ser-hf compare` pairs emotion labels; "
                         f"compare CCC per fold in {root / 'crossval_results.md'}")
    split = split or report.get("split", "validation")
    folds = {}
    for fold in (int(row["fold"]) for row in report["folds"]):
        path = fold_dir(root, fold) / f"predictions_{split}.csv"
        if not path.is_file():
            raise UsageError(f"{path} not found: fold {fold} of {root} has no {split} predictions (rerun its `ser-hf cv` "
                             "command to finish it)")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        folds[fold] = {"speakers": sorted({row["speaker"] for row in rows}), "clips": {row["path"]: row for row in rows}}
    return {"root": root, "labels": list(report["labels"]), "folds": folds}


def _first(items):
    return sorted(items, key=str)[0]


def check_comparable(a, b):
    """Refuse two runs that did not score the same clips of the same speakers on the same folds.

    Raises:
        UsageError: naming the first difference (label set, fold set, held-out speakers of a fold, a clip scored in
            one run only, or a clip whose true label differs).
    """
    name_a, name_b = str(a["root"]), str(b["root"])
    if a["labels"] != b["labels"]:
        raise UsageError(f"the runs have different labels: {name_a} {a['labels']}, {name_b} {b['labels']}")
    only_a, only_b = set(a["folds"]) - set(b["folds"]), set(b["folds"]) - set(a["folds"])
    if only_a or only_b:
        fold, where, other = (_first(only_a), name_a, name_b) if only_a else (_first(only_b), name_b, name_a)
        raise UsageError(f"fold {fold} is in {where} but not in {other} (folds {sorted(a['folds'])} against "
                         f"{sorted(b['folds'])}): compare runs over the same folds (`ser-hf cv --folds ...`)")
    for fold in sorted(a["folds"]):
        fa, fb = a["folds"][fold], b["folds"][fold]
        if fa["speakers"] != fb["speakers"]:
            raise UsageError(f"fold {fold} holds out {', '.join(fa['speakers'])} in {name_a} but "
                             f"{', '.join(fb['speakers'])} in {name_b}: the runs used different folds (fold_scheme, "
                             "n_folds or fold_seed)")
        clips_a, clips_b = set(fa["clips"]), set(fb["clips"])
        if clips_a != clips_b:
            clip, where, other = ((_first(clips_a - clips_b), name_a, name_b) if clips_a - clips_b
                                  else (_first(clips_b - clips_a), name_b, name_a))
            raise UsageError(f"fold {fold}: clip {clip} is scored in {where} but not in {other} (different data, or a "
                             "file one run's audio scan excluded): compare runs on the same clips")
        for clip in sorted(clips_a):
            if fa["clips"][clip]["true"] != fb["clips"][clip]["true"]:
                raise UsageError(f"fold {fold}: clip {clip} is labelled {fa['clips'][clip]['true']!r} in {name_a} but "
                                 f"{fb['clips'][clip]['true']!r} in {name_b}")


def unweighted_accuracy(true_ids, correct, n_classes):
    """UA: the mean over the classes present of the share of their clips predicted right (balanced accuracy)."""
    counts = np.bincount(true_ids, minlength=n_classes)
    hits = np.bincount(true_ids, weights=correct, minlength=n_classes)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def _pooled_arrays(a, b):
    """Clip-aligned arrays over all folds: true id, A right, B right, speaker."""
    index = {name: i for i, name in enumerate(a["labels"])}
    true, right_a, right_b, speakers = [], [], [], []
    for fold in sorted(a["folds"]):
        for clip in sorted(a["folds"][fold]["clips"]):
            row_a, row_b = a["folds"][fold]["clips"][clip], b["folds"][fold]["clips"][clip]
            true.append(index[row_a["true"]])
            right_a.append(row_a["predicted"] == row_a["true"])
            right_b.append(row_b["predicted"] == row_b["true"])
            speakers.append(row_a["speaker"])
    return np.array(true), np.array(right_a, dtype=float), np.array(right_b, dtype=float), np.array(speakers)


def paired_bootstrap(true_ids, right_a, right_b, n_classes, resamples=DEFAULT_RESAMPLES, seed=0, confidence=0.95,
                     groups=None):
    """Percentile confidence interval of UA(B) - UA(A), resampling the same clips (or speakers) for both runs.

    Args:
        true_ids: true class id per clip.
        right_a, right_b: 1.0 where run A (B) predicted the clip right.
        n_classes: number of labels.
        resamples: bootstrap resamples.
        seed: seed of the resampling: the same seed gives the same interval.
        confidence: coverage of the interval.
        groups: optional group (e.g. speaker) per clip: whole groups are resampled, which keeps the correlation
            of one speaker's clips (a clip-level interval is narrower than the speaker-level truth).

    Returns:
        {"low", "high", "share_b_better": share of resamples with UA(B) > UA(A)}.
    """
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)] if groups is not None else None
    diffs = np.empty(resamples)
    for r in range(resamples):
        if members is None:
            idx = rng.integers(0, len(true_ids), len(true_ids))
        else:
            idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        diffs[r] = (unweighted_accuracy(true_ids[idx], right_b[idx], n_classes)
                    - unweighted_accuracy(true_ids[idx], right_a[idx], n_classes))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return {"low": float(low), "high": float(high), "share_b_better": float(np.mean(diffs > 0))}


def _fold_tests(ua_a, ua_b):
    """Paired t-test and Wilcoxon signed-rank test of the per-fold UA differences (None where undefined)."""
    diffs = np.asarray(ua_b) - np.asarray(ua_a)
    n = len(diffs)
    tests = {"folds": n, "paired_t": None, "wilcoxon": None,
             # Exact two-sided Wilcoxon: no p below 2 / 2^n, whatever the differences (0.031 for 6 folds).
             "wilcoxon_min_p": 2.0 / 2 ** n if n else None}
    if n >= 2 and np.std(diffs) > 0:
        t = stats.ttest_rel(ua_b, ua_a)
        tests["paired_t"] = {"statistic": float(t.statistic), "p": float(t.pvalue)}
    if np.any(diffs != 0):
        w = stats.wilcoxon(diffs)
        tests["wilcoxon"] = {"statistic": float(w.statistic), "p": float(w.pvalue)}
    return tests


def _clip_agreement(right_a, right_b):
    """Clips both runs got right / only A / only B / neither, and McNemar's exact test of the discordant ones."""
    only_a, only_b = int(np.sum((right_a == 1) & (right_b == 0))), int(np.sum((right_a == 0) & (right_b == 1)))
    return {"both_right": int(np.sum((right_a == 1) & (right_b == 1))), "only_a_right": only_a,
            "only_b_right": only_b, "both_wrong": int(np.sum((right_a == 0) & (right_b == 0))),
            "mcnemar_p": float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else None}


def compare_runs(a, b, resamples=DEFAULT_RESAMPLES, seed=0, confidence=0.95, unit="clip"):
    """Per-fold and pooled UA of two comparable runs (see `check_comparable`), their difference B - A and its tests.

    Args:
        a, b: `load_cv_run` results; B - A is reported.
        resamples, seed, confidence: of the paired bootstrap.
        unit: "clip" (resample clips) or "speaker" (resample whole speakers, a wider and more honest interval).

    Returns:
        dict: `folds` (fold, speakers, clips, ua_a, ua_b, diff), `fold_summary` (mean/std of each), `pooled` (UA of all
        clips pooled, diff and `ci`), `clips` (agreement and McNemar), `tests` (over folds).
    """
    check_comparable(a, b)
    n_classes, index = len(a["labels"]), {name: i for i, name in enumerate(a["labels"])}
    rows = []
    for fold in sorted(a["folds"]):
        clips = sorted(a["folds"][fold]["clips"])
        true = np.array([index[a["folds"][fold]["clips"][c]["true"]] for c in clips])
        ua = {run: unweighted_accuracy(true, np.array([r["folds"][fold]["clips"][c]["predicted"] ==
                                                       r["folds"][fold]["clips"][c]["true"] for c in clips], float),
                                       n_classes) for run, r in (("a", a), ("b", b))}
        rows.append({"fold": fold, "speakers": a["folds"][fold]["speakers"], "clips": len(clips),
                     "ua_a": ua["a"], "ua_b": ua["b"], "diff": ua["b"] - ua["a"]})
    true, right_a, right_b, speakers = _pooled_arrays(a, b)
    pooled_a, pooled_b = unweighted_accuracy(true, right_a, n_classes), unweighted_accuracy(true, right_b, n_classes)
    ci = paired_bootstrap(true, right_a, right_b, n_classes, resamples, seed, confidence,
                          groups=speakers if unit == "speaker" else None)
    return {
        "a": str(a["root"]), "b": str(b["root"]), "labels": a["labels"], "folds": rows,
        "fold_summary": mean_std(rows, ("ua_a", "ua_b", "diff")),
        "pooled": {"clips": int(len(true)), "ua_a": pooled_a, "ua_b": pooled_b, "diff": pooled_b - pooled_a,
                   "ci": {**ci, "confidence": confidence, "resamples": resamples, "seed": seed, "unit": unit}},
        "clips": _clip_agreement(right_a, right_b),
        "tests": _fold_tests([r["ua_a"] for r in rows], [r["ua_b"] for r in rows]),
    }

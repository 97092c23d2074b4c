"""Tests for ser_hf.evaluation.compare and `ser-hf compare`: paired per-fold differences, bootstrap CI, refusals."""

import csv
import json

import numpy as np
import pytest

from ser_hf.commands.compare import main
from ser_hf.evaluation.compare import compare_runs, load_cv_run, paired_bootstrap, unweighted_accuracy

LABELS = ["neutral", "happy", "sad"]


def write_cv(root, folds, labels=LABELS):
    """What `ser-hf cv` leaves for a comparison: crossval_results.json and fold_k/predictions_validation.csv.

    folds: {fold: [(path, speaker, true, predicted)]}.
    """
    root.mkdir(parents=True)
    rows = [{"fold": k, "speakers": sorted({c[1] for c in clips})} for k, clips in folds.items()]
    (root / "crossval_results.json").write_text(json.dumps({"labels": labels, "folds": rows}))
    for k, clips in folds.items():
        (root / f"fold_{k}").mkdir()
        with open(root / f"fold_{k}" / "predictions_validation.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "speaker", "true", "predicted", "confidence"])
            writer.writerows([*clip, 0.5] for clip in clips)
    return root


def _fold(speaker, predicted, true=("neutral", "happy", "happy", "sad")):
    return [(f"{speaker}/{i}.wav", speaker, t, p) for i, (t, p) in enumerate(zip(true, predicted))]


# Fold 0: A gets neutral and one happy right -> UA (1 + 1/2 + 0) / 3 = 0.5; B all right -> 1.0: B - A = +0.5.
# Fold 1: A all right (1.0); B misses one happy -> (1 + 1/2 + 1) / 3 = 5/6: B - A = -1/6.
FOLDS_A = {0: _fold("s1", ["neutral", "happy", "sad", "happy"]), 1: _fold("s2", ["neutral", "happy", "happy", "sad"])}
FOLDS_B = {0: _fold("s1", ["neutral", "happy", "happy", "sad"]), 1: _fold("s2", ["neutral", "sad", "happy", "sad"])}


@pytest.fixture
def runs(tmp_path):
    return write_cv(tmp_path / "A", FOLDS_A), write_cv(tmp_path / "B", FOLDS_B)


def test_per_fold_and_pooled_differences(runs):
    result = compare_runs(load_cv_run(runs[0]), load_cv_run(runs[1]), resamples=200)
    assert [r["fold"] for r in result["folds"]] == [0, 1]
    assert [r["ua_a"] for r in result["folds"]] == pytest.approx([0.5, 1.0])
    assert [r["diff"] for r in result["folds"]] == pytest.approx([0.5, -1 / 6])
    assert result["fold_summary"]["diff"]["mean"] == pytest.approx((0.5 - 1 / 6) / 2)
    # Pooled: 2 neutral, 4 happy, 2 sad. A: neutral 2/2, happy 3/4, sad 1/2; B: 2/2, 3/4, 2/2.
    assert result["pooled"]["ua_a"] == pytest.approx((1 + 0.75 + 0.5) / 3)
    assert result["pooled"]["diff"] == pytest.approx(0.5 / 3)
    assert result["clips"] == {"both_right": 5, "only_a_right": 1, "only_b_right": 2, "both_wrong": 0,
                               "mcnemar_p": pytest.approx(1.0)}
    assert result["tests"]["folds"] == 2 and result["tests"]["wilcoxon_min_p"] == 0.5


def test_bootstrap_ci_contains_the_observed_difference_and_is_seeded():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 400)
    right_a = (rng.uniform(size=400) < 0.5).astype(float)
    right_b = np.where(rng.uniform(size=400) < 0.8, right_a, 1 - right_a)  # B agrees with A on most clips
    observed = unweighted_accuracy(true, right_b, 4) - unweighted_accuracy(true, right_a, 4)
    ci = paired_bootstrap(true, right_a, right_b, 4, resamples=500, seed=3)
    assert ci["low"] < observed < ci["high"]
    assert ci == paired_bootstrap(true, right_a, right_b, 4, resamples=500, seed=3)
    assert ci != paired_bootstrap(true, right_a, right_b, 4, resamples=500, seed=4)
    # Pairing: B identical to A gives a zero-width interval, however noisy A is.
    same = paired_bootstrap(true, right_a, right_a, 4, resamples=100)
    assert same["low"] == same["high"] == 0.0
    # Resampling whole speakers (4 groups of correlated clips) is allowed and seeded too.
    groups = np.repeat(np.arange(4), 100)
    assert paired_bootstrap(true, right_a, right_b, 4, 200, 1, groups=groups) == \
        paired_bootstrap(true, right_a, right_b, 4, 200, 1, groups=groups)


def test_fold_tests_over_six_folds(tmp_path):
    folds_a = {k: _fold(f"s{k}", ["neutral", "happy", "sad", "happy"]) for k in range(6)}  # UA 0.5 each
    folds_b = {k: _fold(f"s{k}", ["neutral", "happy", "happy", "sad"] if k < 5 else ["sad", "sad", "sad", "sad"])
               for k in range(6)}  # 5 folds at UA 1.0, one at 1/3
    result = compare_runs(load_cv_run(write_cv(tmp_path / "A", folds_a)), load_cv_run(write_cv(tmp_path / "B", folds_b)),
                          resamples=100)
    tests = result["tests"]
    assert tests["paired_t"]["p"] < 0.05 and tests["paired_t"]["statistic"] > 0
    # Exact signed-rank: ranks 1 (the -1/6 fold) against 2..6 tied at +0.5 -> W = 1, two-sided p = 4/64.
    assert tests["wilcoxon"]["statistic"] == 1.0 and tests["wilcoxon"]["p"] == pytest.approx(4 / 64, abs=0.01)
    assert tests["wilcoxon_min_p"] == pytest.approx(2 / 64)


def test_cli_prints_and_writes_json_beside_b(runs, capsys):
    assert main([str(runs[0]), str(runs[1]), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "| 0 | s1 | 4 | 50.0 | 100.0 | +50.0 |" in out
    assert "**mean +- std**" in out and "paired bootstrap CI" in out
    written = json.loads((runs[1] / "compare_with_A.json").read_text())
    assert written["pooled"]["diff"] == pytest.approx(0.5 / 3) and written["a"] == str(runs[0])
    assert (runs[1] / "compare_with_A.md").read_text().startswith("A: ")


@pytest.mark.parametrize("change, message", [
    (lambda f: f.pop(1), "fold 1 is in "),
    (lambda f: f.update({1: _fold("s9", ["neutral"] * 4)}), "fold 1 holds out s2 in "),
    (lambda f: f[0].pop(), "fold 0: clip s1/3.wav is scored in "),
    (lambda f: f[0].__setitem__(0, ("s1/0.wav", "s1", "sad", "sad")), "fold 0: clip s1/0.wav is labelled 'neutral'"),
], ids=["fold-set", "speakers", "clips", "labels"])
def test_mismatched_runs_are_refused_in_one_line(tmp_path, capsys, change, message):
    folds_b = {k: list(v) for k, v in FOLDS_B.items()}
    change(folds_b)
    a, b = write_cv(tmp_path / "A", FOLDS_A), write_cv(tmp_path / "B", folds_b)
    assert main([str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(b.glob("compare_with_*"))


def test_unfinished_or_missing_runs_are_refused(runs, tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), str(runs[1])]) == 2
    assert "crossval_results.json not found" in capsys.readouterr().err
    (runs[1] / "fold_1" / "predictions_validation.csv").unlink()
    assert main([str(runs[0]), str(runs[1])]) == 2
    assert "fold 1 of" in capsys.readouterr().err
    with open(runs[0] / "crossval_results.json", "r+") as handle:
        report = json.load(handle)
    report["labels"] = ["calm", "happy", "sad"]
    (runs[0] / "crossval_results.json").write_text(json.dumps(report))
    b2 = write_cv(tmp_path / "B2", FOLDS_B)
    assert main([str(runs[0]), str(b2)]) == 2
    assert "different labels" in capsys.readouterr().err

"""Tests for ser_hf.evaluation.baseline and the baseline command (recipes/baseline_svm.py): features, speaker-grouped SVM selection, the recipe."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from ser_hf.commands.baseline import build_parser, summary_line
from ser_hf.evaluation.baseline import N_FEATURES, extract_all, extract_features, fit_svm
from ser_hf.experiments import svm_baseline
from tests.conftest import make_ravdess_tree, write_tone

ROOT = Path(__file__).resolve().parents[2]


def run_baseline(argv):
    """`ser-hf baseline ARGV` in this process: the report it writes."""
    args, overrides = build_parser("ser-hf baseline").parse_known_args(argv)
    report, _ = svm_baseline.run_baseline(args.config, overrides, folds=args.folds, output_dir=args.output_dir,
                                          workers=args.workers, seed=args.seed)
    return report


def _config_args(data_dir):
    """The demo recipe pointed at a generated RAVDESS tree: 4 folds of 2 actors, one worker."""
    return [str(ROOT / "recipes/configs/demo.yaml"), "--corpus", "ravdess", "--data_dir", str(data_dir),
            "--download", "false", "--n_folds", "4", "--workers", "1", "--scan_workers", "1"]


@pytest.mark.parametrize("seconds", [1.0, 0.05])  # a normal tone and a clip shorter than one analysis frame
def test_features_fixed_length_and_finite(tmp_path, seconds):
    path = write_tone(tmp_path / "tone.wav", seconds, 220, seed=0)
    features = extract_features(path)
    assert features.shape == (N_FEATURES,)
    assert np.all(np.isfinite(features))
    assert features[-2] == pytest.approx(seconds, abs=1e-3)  # duration


def test_features_resample_and_stereo(tmp_path):
    path = write_tone(tmp_path / "tone.wav", 0.5, 220, seed=0, sr=22_050, channels=2)
    features = extract_features(path)
    assert features.shape == (N_FEATURES,) and np.all(np.isfinite(features))
    assert features[-2] == pytest.approx(0.5, abs=1e-3)


def _separable(seed=0, speakers=6, per_class=10, classes=3):
    rng = np.random.default_rng(seed)
    X, y, groups = [], [], []
    for s in range(speakers):
        for c in range(classes):
            X.append(rng.normal(loc=4.0 * c, scale=1.0, size=(per_class, 8)))
            y += [c] * per_class
            groups += [f"spk{s}"] * per_class
    return np.concatenate(X), np.array(y), np.array(groups)


def test_fit_svm_separable_grouped():
    X, y, groups = _separable()
    search = fit_svm(X, y, cv_groups=groups, seed=0)
    assert isinstance(search.cv, GroupKFold)
    assert search.best_score_ > 0.9
    X_test, y_test, _ = _separable(seed=1)
    assert (search.predict(X_test) == y_test).mean() > 0.9
    # No speaker on both sides of any inner split.
    for train, val in search.cv.split(X, y, groups):
        assert not set(groups[train]) & set(groups[val])


def test_fit_svm_without_groups():
    X, y, _ = _separable()
    search = fit_svm(X, y, seed=0)
    assert not isinstance(search.cv, GroupKFold)
    assert search.best_score_ > 0.9


def test_recipe_writes_results_and_scales_on_train_only(tmp_path, monkeypatch):
    data = make_ravdess_tree(tmp_path / "ravdess", actors=8, seconds=(0.3, 0.5))
    fitted_rows = []
    original_fit = StandardScaler.fit

    def spy_fit(self, X, y=None, sample_weight=None):
        fitted_rows.append(len(X))
        return original_fit(self, X, y, sample_weight)

    monkeypatch.setattr(StandardScaler, "fit", spy_fit)
    out = tmp_path / "out"
    returned = run_baseline([*_config_args(data), "--folds", "all", "--output_dir", str(out)])
    report = json.loads((out / "baseline_results.json").read_text())
    assert report == json.loads(json.dumps(returned))
    assert [f["fold"] for f in report["folds"]] == [0, 1, 2, 3]
    for fold in report["folds"]:
        assert fold["n_train"] == 6 * 8 and fold["n_eval"] == 2 * 8
        assert set(fold["best_params"]) == {"C", "kernel"}
    assert set(report["summary"]) == {"ua", "wa", "macro_f1"}
    # Each emotion is a tone of its own pitch: an SVM that learned anything is far above chance (12.5 %).
    assert report["summary"]["ua"]["mean"] > 0.6
    # Inner-CV fits see a subset of a fold's training clips and each fold's final refit exactly its training
    # clips; no fit ever sees more (with the held-out speakers' 16 clips it would be 64).
    assert max(fitted_rows) == 48 and fitted_rows.count(48) == 4


def test_recipe_defaults_to_the_configs_fold_and_names_its_speakers(tmp_path):
    data = make_ravdess_tree(tmp_path / "ravdess", actors=8, seconds=(0.3, 0.4))
    report = run_baseline([*_config_args(data), "--fold", "1", "--output_dir", str(tmp_path / "out")])
    assert [f["fold"] for f in report["folds"]] == [1]
    assert report["folds"][0]["eval_speakers"] == ["Actor_03", "Actor_04"]


def test_recipe_runs_on_any_corpus_a_config_names(tmp_path):
    # A manifest corpus with speakers: the SVM gets the same speaker folds as the neural recipe.
    data = make_ravdess_tree(tmp_path / "ravdess", actors=4, seconds=(0.3, 0.4))
    manifest = tmp_path / "corpus.csv"
    rows = ["path,label,speaker"] + [f"{p.relative_to(tmp_path)},{'high' if int(p.name[6:8]) > 4 else 'low'},"
                                     f"{p.parent.name}" for p in sorted(data.rglob("*.wav"))]
    manifest.write_text("\n".join(rows) + "\n")
    report = run_baseline([str(ROOT / "recipes/configs/custom.yaml"), "--manifest", str(manifest), "--data_dir",
                           str(tmp_path), "--n_folds", "2", "--folds", "all", "--workers", "1", "--scan_workers", "1",
                           "--output_dir", str(tmp_path / "out")])
    assert report["labels"] == ["high", "low"] and report["corpus"] == "manifest"
    assert [f["n_eval"] for f in report["folds"]] == [16, 16]


def test_extract_all_parallel_matches_serial(tmp_path):
    paths = [write_tone(tmp_path / f"{i}.wav", 0.3, 200 + 50 * i, seed=i) for i in range(3)]
    np.testing.assert_allclose(extract_all(paths, workers=2), extract_all(paths, workers=1))


def test_the_summary_line_gives_a_spread_only_over_several_folds():
    one = {"folds": [{"fold": 5, "ua": 0.73, "wa": 0.733, "macro_f1": 0.742}], "summary": {}}
    assert summary_line(one) == "UA 0.730 WA 0.733 MACRO_F1 0.742 on fold 5"
    two = {"folds": [{"fold": 0}, {"fold": 1}],
           "summary": {m: {"mean": 0.5, "std": 0.1} for m in ("ua", "wa", "macro_f1")}}
    assert summary_line(two) == "UA 0.500 +- 0.100 WA 0.500 +- 0.100 MACRO_F1 0.500 +- 0.100 over 2 folds"

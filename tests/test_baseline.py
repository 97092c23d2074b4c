"""Tests for ser_hf.baseline and recipes/baseline_svm.py: features, speaker-grouped SVM selection, the recipe."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from ser_hf.baseline import N_FEATURES, extract_all, extract_features, fit_svm
from tests.conftest import make_ravdess_tree, write_tone

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "baseline_svm.py"


def _load_recipe():
    spec = importlib.util.spec_from_file_location("baseline_svm_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    recipe = _load_recipe()
    real_extract = recipe.extract_all  # one process: a pool costs more than 64 short clips
    monkeypatch.setattr(recipe, "extract_all", lambda paths, workers=None: real_extract(paths, workers=1))
    out = tmp_path / "out"
    returned = recipe.main(["--corpus", "ravdess", "--data_dir", str(data), "--n_folds", "4", "--all_folds",
                            "--output_dir", str(out)])
    report = json.loads((out / "baseline_results.json").read_text())
    assert report == json.loads(json.dumps(returned))
    assert [f["fold"] for f in report["folds"]] == [0, 1, 2, 3]
    for fold in report["folds"]:
        assert fold["n_train"] == 6 * 8 and fold["n_eval"] == 2 * 8
        assert 0.0 <= fold["ua"] <= 1.0 and 0.0 <= fold["wa"] <= 1.0
        assert set(fold["best_params"]) == {"C", "kernel"}
    assert set(report["summary"]) == {"ua", "wa", "macro_f1"}
    assert 0.0 <= report["summary"]["ua"]["mean"] <= 1.0
    # Inner-CV fits see a subset of a fold's training clips and each fold's final refit exactly its training
    # clips; no fit ever sees more (with the held-out speakers' 16 clips it would be 64).
    assert max(fitted_rows) == 48 and fitted_rows.count(48) == 4


def test_recipe_single_fold(tmp_path, monkeypatch):
    data = make_ravdess_tree(tmp_path / "ravdess", actors=8, seconds=(0.3, 0.4))
    recipe = _load_recipe()
    real_extract = recipe.extract_all
    monkeypatch.setattr(recipe, "extract_all", lambda paths, workers=None: real_extract(paths, workers=1))
    report = recipe.main(["--corpus", "ravdess", "--data_dir", str(data), "--n_folds", "4", "--fold", "1",
                          "--output_dir", str(tmp_path / "out")])
    assert [f["fold"] for f in report["folds"]] == [1]
    assert report["folds"][0]["eval_speakers"] == ["Actor_03", "Actor_04"]


def test_extract_all_parallel_matches_serial(tmp_path):
    paths = [write_tone(tmp_path / f"{i}.wav", 0.3, 200 + 50 * i, seed=i) for i in range(3)]
    np.testing.assert_allclose(extract_all(paths, workers=2), extract_all(paths, workers=1))

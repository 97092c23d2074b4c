"""End-to-end: `ser-hf search` of 3 probe trials on generated RAVDESS-layout audio with a tiny random wav2vec2, killed
(SIGKILL) during its second trial and run again: the study continues, the killed trial is retried, and the best
config's cross-validation is an ordinary one whose folds are the runs the search scored."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ser_hf.commands.search import main as search_main
from ser_hf.config import parse_config
from tests.conftest import TINY_ENCODER

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
MODEL = {**TINY_ENCODER, "num_hidden_layers": 2, "feat_extract_norm": "layer"}


def _argv(data_dir, output_dir):
    return [str(ROOT / "recipes/configs/demo.yaml"), "--corpus", "ravdess", "--data_dir", str(data_dir),
            "--download", "false", "--n_folds", "4", "--test_fold", "3", "--model_config_overrides", json.dumps(MODEL),
            "--probe", "true", "--probe_epochs", "40", "--probe_patience", "0", "--probe_layer_analysis", "false",
            "--per_device_eval_batch_size", "4", "--output_dir", str(output_dir),
            "--n_trials", "3", "--folds", "0,1", "--parallel", "2", "--baseline", "false"]


def _trials(db):
    """{trial number: (state, parameters set)} read from optuna's SQLite tables."""
    if not db.is_file():
        return {}
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            rows = connection.execute("SELECT t.number, t.state, COUNT(p.param_id) FROM trials t LEFT JOIN "
                                      "trial_params p ON p.trial_id = t.trial_id GROUP BY t.trial_id").fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet, or the search holds the write lock
        return {}
    return {number: (state, params) for number, state, params in rows}


def _trial_states(db):
    return {number: state for number, (state, _) in _trials(db).items()}


def _kill_during_second_trial(argv, db):
    proc = subprocess.Popen([sys.executable, "-m", "ser_hf.cli", "search", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while _trials(db).get(1) != ("RUNNING", 4):  # its 4 parameters drawn: its folds are under way
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the search never started its second trial"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def test_a_killed_search_continues_and_retries_the_killed_trial(ravdess_tree, tmp_path):
    out = tmp_path / "search"
    argv = _argv(ravdess_tree, out)
    _kill_during_second_trial(argv, out / "study.db")
    assert _trial_states(out / "study.db") == {0: "COMPLETE", 1: "RUNNING"}  # what a kill leaves behind

    assert search_main(argv) == 0  # the same command again
    trials = json.loads((out / "search_results.json").read_text())
    assert trials["trials"] == {"COMPLETE": 3, "FAIL": 1} or trials["trials"] == {"COMPLETE": 2, "PRUNED": 1,
                                                                                    "FAIL": 1}
    rows = (out / "trials.csv").read_text().splitlines()
    header, by_trial = rows[0].split(","), {int(r.split(",")[0]): r for r in rows[1:]}
    assert len(by_trial) == 4 and "FAIL" in by_trial[1] and "interrupted (killed)" in by_trial[1]
    assert "retry of trial 1" in by_trial[2] and "the config's own values" in by_trial[0]
    lr = header.index("probe_learning_rate")
    assert by_trial[2].split(",")[lr] == by_trial[1].split(",")[lr]  # retried with the same parameters
    for name in ("best_config.yaml", "trials.md", "search_results.md", "optimization_history.png",
                 "param_importances.png"):
        assert (out / name).is_file(), name

    # The best config runs as it is; the final cross-validation ran it on the searched folds, one run per fold,
    # and scored the fold models' ensemble on the test fold that no trial touched.
    best = trials["best"]
    _, data_args, training_args = parse_config(out / "best_config.yaml")
    assert training_args.probe_learning_rate == pytest.approx(best["params"]["probe_learning_rate"])
    assert (data_args.fold, data_args.test_fold) == (0, 3)
    assert trials["best_cv"] == str(out / best["run_dir"])  # the best trial's dir (a retry: its first try's)
    report = json.loads((out / best["run_dir"] / "crossval_results.json").read_text())
    assert report["ensemble"]["test_fold"] == 3 and report["ensemble"]["models"] == 2
    # Each fold's run is the trial's fold: the same head on the same features (the full model's evaluation
    # and the cached means agree up to float rounding).
    for row in report["folds"]:
        assert row["ua"] == pytest.approx(best["fold_ua"][str(row["fold"])], abs=0.07), row["fold"]

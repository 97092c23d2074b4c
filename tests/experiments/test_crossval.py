"""Tests for ser_hf.experiments.crossval and recipes/crossval.py: the fold table, pooled metrics, resumable folds."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_hf.commands import crossval
from ser_hf.evaluation.fold_summary import mean_std, summarize
from ser_hf.evaluation.metrics import compute_ser_metrics, compute_ser_metrics_from_confusion
from ser_hf.experiments.crossval import fold_command, run_folds
from ser_hf.reporting.crossval_report import markdown_table
from tests.conftest import TINY_ENCODER, write_tone

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["neutral", "happy", "sad"]


def _fold(cm, speakers):
    cm = np.asarray(cm)
    metrics = compute_ser_metrics_from_confusion(cm, LABELS)
    return {**metrics, "num_examples": int(cm.sum()), "speakers": speakers}


def test_metrics_from_a_confusion_matrix_equal_the_per_clip_metrics():
    rng = np.random.default_rng(0)
    references, predictions = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    direct = compute_ser_metrics(predictions, references, LABELS)
    rebuilt = compute_ser_metrics_from_confusion(direct["confusion_matrix"], LABELS)
    assert rebuilt["confusion_matrix"] == direct["confusion_matrix"]
    for key in ("ua", "wa", "macro_f1", "per_class_recall"):
        assert rebuilt[key] == pytest.approx(direct[key])


def test_summary_mean_std_and_pooled_confusion():
    folds = {0: _fold([[4, 0, 0], [0, 4, 0], [0, 0, 4]], ["s1"]),  # perfect
             1: _fold([[2, 2, 0], [0, 4, 0], [0, 4, 0]], ["s2"])}  # UA (0.5 + 1 + 0) / 3
    baseline = {0: {"ua": 0.6, "wa": 0.6, "macro_f1": 0.6}, 1: {"ua": 0.4, "wa": 0.4, "macro_f1": 0.4}}
    report = summarize(folds, LABELS, baseline)
    assert report["summary"]["ua"]["mean"] == pytest.approx(0.75)
    assert report["summary"]["ua"]["std"] == pytest.approx(0.25)  # population std over the two folds
    assert report["pooled"]["confusion_matrix"] == [[6, 2, 0], [0, 8, 0], [0, 4, 4]]
    assert report["pooled"]["ua"] == pytest.approx((6 / 8 + 1 + 0.5) / 3)
    assert report["baseline"]["summary"]["ua"]["mean"] == pytest.approx(0.5)
    table = markdown_table(report)
    assert "| 1 | s2 | 12 | 50.0 | 50.0 |" in table
    assert "75.0 +- 25.0" in table and "50.0 +- 10.0" in table  # the model and the SVM on the mean row
    assert mean_std([{"ua": 1.0}, {"ua": 0.0}], ("ua",)) == {"ua": {"mean": 0.5, "std": 0.5}}


def test_fold_command_resumes_only_where_a_checkpoint_is_intact(tmp_path, trained):
    fresh = fold_command("c.yaml", ["--learning_rate", "1e-3"], 2, tmp_path / "fold_2")
    assert fresh[-4:] == ["--fold", "2", "--output_dir", str(tmp_path / "fold_2")]
    assert fresh[1:5] == ["-m", "ser_hf.cli", "train", "c.yaml"]  # the package's own entry point
    assert "--resume" not in fresh
    launched = fold_command(None, [], 0, tmp_path / "fold_0", launcher="accelerate launch --num_processes 2")
    assert launched[:7] == ["accelerate", "launch", "--num_processes", "2", "-m", "ser_hf.cli", "train"]
    # An interrupted fold (an intact checkpoint in its dir) resumes; one whose only checkpoint is broken starts over.
    interrupted = shutil.copytree(trained, tmp_path / "fold_1")
    assert fold_command("c.yaml", [], 1, interrupted)[-2:] == ["--resume", "true"]
    for checkpoint in interrupted.glob("checkpoint-*"):
        (checkpoint / "optimizer.pt").unlink()
    assert "--resume" not in fold_command("c.yaml", [], 1, interrupted)
    # A pseudo-labelled fold killed in its last round before any checkpoint there: round 0 is kept, not retrained.
    pseudo = tmp_path / "fold_3"
    shutil.copytree(trained, pseudo / "pseudo_round_0")
    assert fold_command("c.yaml", [], 3, pseudo)[-2:] == ["--resume", "true"]
    for checkpoint in (pseudo / "pseudo_round_0").glob("checkpoint-*"):
        (checkpoint / "optimizer.pt").unlink()
    assert "--resume" not in fold_command("c.yaml", [], 3, pseudo)


def _crossval_args(data_dir, output_dir):
    overrides = json.dumps({**TINY_ENCODER, "feat_extract_norm": "layer"})
    return [str(ROOT / "recipes/configs/demo.yaml"), "--corpus", "ravdess", "--data_dir", str(data_dir),
            "--download", "false", "--n_folds", "4", "--model_config_overrides", overrides,
            "--max_steps", "4", "--eval_strategy", "steps", "--save_strategy", "steps", "--eval_steps", "2",
            "--save_steps", "2", "--max_duration_seconds", "1.0", "--per_device_train_batch_size", "8",
            "--output_dir", str(output_dir)]


@pytest.mark.slow
def test_crossval_runs_every_fold_once_and_reports_them(ravdess_tree, tmp_path):
    out = tmp_path / "cv"
    # Two folds first: an interrupted cross-validation.
    assert crossval.main([*_crossval_args(ravdess_tree, out), "--folds", "0,1", "--parallel", "2"]) == 0
    first = {k: (out / f"fold_{k}" / "model.safetensors").stat().st_mtime_ns for k in (0, 1)}
    partial = json.loads((out / "crossval_results.json").read_text())
    assert [row["fold"] for row in partial["folds"]] == [0, 1]
    # The same command over all folds trains only the two missing ones.
    assert crossval.main([*_crossval_args(ravdess_tree, out), "--baseline", "true"]) == 0
    assert {k: (out / f"fold_{k}" / "model.safetensors").stat().st_mtime_ns for k in (0, 1)} == first
    report = json.loads((out / "crossval_results.json").read_text())
    assert report["status"] == {"0": "skipped", "1": "skipped", "2": "finished", "3": "finished"}
    speakers = [set(row["speakers"]) for row in report["folds"]]
    assert all(len(s) == 2 for s in speakers) and len(set().union(*speakers)) == 8  # every actor held out once
    assert sum(row["num_examples"] for row in report["folds"]) == 64
    assert np.sum(report["pooled"]["confusion_matrix"]) == 64
    assert [row["fold"] for row in report["baseline"]["folds"]] == [0, 1, 2, 3]  # the SVM beside each fold
    assert "SVM UA %" in (out / "crossval_results.md").read_text()
    assert (out / "confusion_matrix_normalized.png").is_file()
    for k in range(4):  # each fold is a complete run with its own diagnostics
        assert (out / f"fold_{k}" / "diagnostics.json").is_file()


def test_crossval_refuses_a_single_fold_argument(ravdess_tree, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "recipes/crossval.py"), *_crossval_args(ravdess_tree, tmp_path),
                           "--fold", "2"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--fold does not apply to cross-validation" in proc.stderr


def test_run_sh_cv_flag_routes_to_crossval(ravdess_tree, tmp_path):
    # --fold with --cv: only crossval.py refuses it, so the refusal shows where run.sh sent the command.
    proc = subprocess.run(["bash", str(ROOT / "run.sh"), "ravdess", "--cv", "--data_dir", str(ravdess_tree),
                           "--fold", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--fold does not apply to cross-validation" in proc.stderr


@pytest.mark.slow
def test_crossval_with_a_test_fold_scores_the_fold_models_ensemble(ravdess_tree, tmp_path):
    out = tmp_path / "cv"
    args = [*_crossval_args(ravdess_tree, out), "--test_fold", "3", "--folds", "0,1", "--baseline", "false",
            "--parallel", "2"]
    assert crossval.main(args) == 0
    report = json.loads((out / "crossval_results.json").read_text())
    ensemble = report["ensemble"]
    assert ensemble["test_fold"] == 3 and ensemble["models"] == 2 and ensemble["ensemble"]["num_examples"] == 16
    test_speakers = set(ensemble["speakers"])
    for k in (0, 1):  # the test fold's speakers were in no run's training or validation
        with open(out / f"fold_{k}" / "predictions_validation.csv") as handle:
            assert not {row["speaker"] for row in csv.DictReader(handle)} & test_speakers
        assert sum(json.loads((out / f"fold_{k}" / "class_counts.json").read_text())["train"].values()) == 32
    # Each model alone, re-evaluated for the ensemble, scores what its own run reported on the test fold.
    singles = [json.loads((out / f"fold_{k}" / "ser_results.json").read_text())["test"]["ua"] for k in (0, 1)]
    assert ensemble["single_models"]["ua"]["mean"] == pytest.approx(np.mean(singles))
    with open(out / "ensemble_predictions_test.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and {row["speaker"] for row in rows} == test_speakers
    assert "Test fold 3" in (out / "crossval_results.md").read_text()


def test_a_fold_streams_its_output_as_it_comes_progress_bars_included(tmp_path, capfd):
    # A stand-in launcher that prints what tqdm prints ("\r" redraws) and a failure: the bytes reach the
    # terminal and the fold's log as they are, not one line per redraw.
    fake = tmp_path / "fake_launcher.py"
    fake.write_text("import sys\nsys.stdout.write('step 1/3\\rstep 2/3\\rstep 3/3\\n')\nsys.exit(3)\n")
    status = run_folds("c.yaml", [], [0], tmp_path / "cv", launcher=f"{sys.executable} {fake}")
    assert status == {0: f"failed (exit 3, see {tmp_path / 'cv' / 'logs' / 'fold_0.log'})"}
    assert "step 1/3\rstep 2/3\rstep 3/3\n" in capfd.readouterr().out
    log = (tmp_path / "cv" / "logs" / "fold_0.log").read_bytes()
    assert log.startswith(b"$ ") and log.endswith(b"step 1/3\rstep 2/3\rstep 3/3\n")


def test_a_failed_folds_one_line_error_is_in_its_status(tmp_path):
    fake = tmp_path / "fake_launcher.py"
    fake.write_text("import sys\nprint('ser-hf train: error: writing checkpoint-9 in out failed: No space left on "
                    "device (0.0 MB free)', file=sys.stderr)\nsys.exit(1)\n")
    status = run_folds("c.yaml", [], [0], tmp_path / "cv", launcher=f"{sys.executable} {fake}", parallel=2)
    assert status == {0: "failed (exit 1: writing checkpoint-9 in out failed: No space left on device (0.0 MB free), "
                         f"see {tmp_path / 'cv' / 'logs' / 'fold_0.log'})"}


def test_crossval_refuses_a_corpus_without_speakers_in_one_line(tmp_path, capsys):
    rows = ["path,label"] + [f"{write_tone(tmp_path / f'{i}.wav', 0.3, 200 + 40 * i, seed=i).name},{'ab'[i % 2]}"
                             for i in range(8)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    code = crossval.main([str(ROOT / "recipes/configs/custom_small.yaml"), "--manifest", str(tmp_path / "m.csv"),
                          "--n_folds", "2", "--baseline", "false", "--output_dir", str(tmp_path / "cv")])
    assert code == 2 and "folds would not be speaker-independent" in capsys.readouterr().err
    assert not list((tmp_path / "cv").glob("fold_*"))  # refused before any fold trained

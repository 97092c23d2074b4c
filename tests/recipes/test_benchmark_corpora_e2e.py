"""End-to-end: the field's benchmarks as a user runs them (`bash run.sh iemocap | msp_podcast | emodb`) on generated
trees with the real layouts. Tiny random models; the point is the protocol, the outputs and the card."""

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_emobox_tree, make_emodb_tree, make_iemocap_tree, make_msp_podcast_tree, tiny_run_args

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# The config names the corpus, its folds and protocol; the run evaluates once at the end, the checkpoint is the last.
FAST = {"corpus": None, "download": None, "n_folds": None, "fold": None, "gradient_accumulation_steps": 1,
        "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False, "early_stopping_patience": 0,
        "per_device_eval_batch_size": 8, "max_steps": 3}


def _run_sh(command, data_dir, output_dir, *extra, **overrides):
    args = tiny_run_args(data_dir, output_dir, **{**FAST, **overrides})
    proc = subprocess.run(["bash", str(ROOT / "run.sh"), command, *args, *extra], capture_output=True, text=True,
                          cwd=output_dir.parent, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _speakers(path):
    with open(path, newline="") as handle:
        return {row["speaker"] for row in csv.DictReader(handle)}


def test_iemocap_reports_the_held_out_session_as_test(tmp_path):
    tree = tmp_path / "corpus"
    make_iemocap_tree(tree)
    out = tmp_path / "fold2"
    proc = _run_sh("iemocap", tree, out, fold=2)
    results = json.loads((out / "ser_results.json").read_text())
    assert set(results) == {"validation", "test"}
    assert _speakers(out / "predictions_test.csv") == {"Ses03F", "Ses03M"}  # session 3: held out, never selected on
    assert _speakers(out / "predictions_validation.csv") == {"Ses04F", "Ses04M"}
    config = json.loads((out / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(4)] == ["neutral", "angry", "sad", "happy"]
    card = (out / "README.md").read_text()
    assert "Leave one session out" in card and "test (fold 2: Ses03F, Ses03M)" in card
    assert "fru (not one of the 4 classes): 20" in card  # the labels the task leaves out are counted
    assert "test" in proc.stdout


def test_iemocap_cross_validation_tables_the_test_sessions(tmp_path):
    tree = tmp_path / "corpus"
    make_iemocap_tree(tree)
    out = tmp_path / "cv"
    _run_sh("iemocap", tree, out, "--cv", "--folds", "0,4", "--baseline", "false")
    report = json.loads((out / "crossval_results.json").read_text())
    assert report["split"] == "test"
    assert [row["speakers"] for row in report["folds"]] == [["Ses01F", "Ses01M"], ["Ses05F", "Ses05M"]]
    assert "took no part in training or selection" in (out / "crossval_results.md").read_text()


def test_msp_podcast_trains_on_train_and_reports_each_test_set(tmp_path):
    tree = tmp_path / "corpus"
    kept = make_msp_podcast_tree(tree)
    out = tmp_path / "msp"
    _run_sh("msp_podcast", tree, out)
    results = json.loads((out / "ser_results.json").read_text())
    assert set(results) == {"validation", "test", "test2"}
    assert results["test"]["num_examples"] == len(kept["Test1"]) and results["test2"]["num_examples"] == len(kept["Test2"])
    card = (out / "README.md").read_text()
    assert "the release's own splits" in card.lower() and "no known speaker" in card
    assert "O (other): 6" in card


def test_emodb_runs_on_its_speaker_folds(tmp_path):
    tree = tmp_path / "data" / "emodb"
    make_emodb_tree(tree)
    out = tmp_path / "emodb"
    _run_sh("emodb", tree, out, fold=1)
    assert len(_speakers(out / "predictions_validation.csv")) == 2
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 7


def test_emobox_cross_validation_on_its_own_fold_files_in_emobox_form(tmp_path):
    _, data, _ = make_emobox_tree(tmp_path / "EmoBox", overlap=True)  # fold_1 tests one clip of a training speaker
    out = tmp_path / "cv"
    _run_sh("emobox", None, out, "--cv", "--emobox_dir", str(data))  # --data_dir: the EmoBox checkout, by default
    report = json.loads((out / "crossval_results.json").read_text())
    assert report["split"] == "test" and [row["fold"] for row in report["folds"]] == [0, 1]
    assert [row["speakers"] for row in report["folds"]] == [["sp1", "sp2", "sp3", "sp4"], ["sp4", "sp5", "sp6"]]
    assert all("macro_f1_union" in row for row in report["folds"])
    assert [row["fold"] for row in report["baseline"]["folds"]] == [0, 1]  # the SVM on the same files
    table = (out / "crossval_results.md").read_text()
    assert "EmoBox's form" in table and "| fold_1 |" in table and "| fold_2 |" in table
    assert "scored on EmoBox's test file" in table and "next fold" not in table
    assert "NOT speaker-independent: EmoBox's fold fold_1 put the same" in table  # fold_2 is independent
    card = (out / "fold_0" / "README.md").read_text()
    assert "EmoBox fold_1: trained on its train file, the validation split is 1 of its 3 training speakers" in card
    assert "NOT speaker-independent" in card


def test_iemocap_dimensional_rates_every_utterance_of_the_held_out_session(tmp_path):
    tree = tmp_path / "corpus"
    make_iemocap_tree(tree)
    out = tmp_path / "avd"
    _run_sh("iemocap", tree, out, "--task", "dimensional", fold=0)
    results = json.loads((out / "ser_results.json").read_text())
    assert {"ccc", "ccc_arousal", "baseline_mse"} <= set(results["test"])
    with open(out / "predictions_test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 7 and {row["speaker"] for row in rows} == {"Ses01F", "Ses01M"}  # fru, xxx too
    assert json.loads((out / "config.json").read_text())["problem_type"] == "regression"

"""`ser-hf sweep`: the YAML checked in one line; a 2-setting x 2-fold probe sweep run by two workers on a real
PostgreSQL server (tests/postgres.py), one killed mid-cell: every cell finished once (the killed one retried once),
one table per corpus, the password nowhere."""

import json
import signal
import time
from pathlib import Path

import optuna
import pytest
import yaml

from ser_hf.commands.sweep import main as sweep_main
from ser_hf.errors import UsageError
from ser_hf.experiments.shared_study import default_study_name
from ser_hf.experiments.storage_url import storage_url
from ser_hf.experiments.sweep import read_sweep
from tests.conftest import TINY_ENCODER
from tests.postgres import PASSWORD
from tests.shared_workers import files_holding, running_trial, start_worker

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes/configs/demo.yaml")


def _write(tmp_path, spec, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return path


def _sweep(data_dir):
    return {"config": DEMO, "folds": [0, 1], "probe": True,
            # The per-layer analysis costs seconds a fold: one setting has it, the other shows a table without it.
            "grid": {"encoder": [{"name": "one-layer", "probe_layer_analysis": False,
                                  "model_config_overrides": {**TINY_ENCODER, "feat_extract_norm": "layer"}},
                                 {"name": "two-layer", "probe_layer_analysis": True, "model_config_overrides": {
                                     **TINY_ENCODER, "num_hidden_layers": 2, "feat_extract_norm": "layer"}}]},
            "fixed": {"corpus": "ravdess", "data_dir": str(data_dir), "download": False, "n_folds": 3,
                      "probe_epochs": 30, "probe_patience": 0, "per_device_eval_batch_size": 4}}


def test_the_grid_becomes_settings_with_their_overrides(tmp_path):
    config, settings, folds = read_sweep(_write(tmp_path, {
        "config": DEMO, "grid": {"model_name_or_path": ["org/enc-a", "org/enc-b"],
                                 "data": [{"corpus": "demo", "data_dir": "data/demo"}]},
        "fixed": {"probe_epochs": 150}}))
    assert config == DEMO and folds is None  # folds: all by default
    assert [s.slug for s in settings] == ["enc-a__demo-demo", "enc-b__demo-demo"]
    assert settings[0].overrides == ["--probe_epochs", "150", "--probe", "true", "--model_name_or_path", "org/enc-a",
                                     "--corpus", "demo", "--data_dir", "data/demo"]


def test_the_example_sweep_reads():
    config, settings, folds = read_sweep(ROOT / "recipes/sweeps/demo_probe.yaml")
    assert Path(config).is_file() and folds is None
    assert [s.slug for s in settings] == ["tiny-wav2vec2-random", "tiny-hubert-random"]
    assert settings[1].overrides[-2:] == ["--model_type", "hubert"] and "--probe" in settings[1].overrides


@pytest.mark.parametrize("text, message", [
    ("config: [unclosed", "not valid YAML (line 1)"),
    ({"config": DEMO, "grid": {"model_name_or_path": ["a"]}, "epochs": 3}, "unknown key epochs: a sweep has config"),
    ({"config": DEMO, "grid": {"learnin_rate": [1]}}, "grid.learnin_rate is not a recipe field"),
    ({"config": DEMO, "grid": {"enc": [{"model_typ": "hubert"}]}}, "grid.enc: model_typ is not a recipe field"),
    ({"config": DEMO, "grid": {"model_name_or_path": "a"}}, "grid.model_name_or_path must be a non-empty list"),
    ({"config": DEMO, "grid": {"model_name_or_path": ["a"]}, "folds": "some"}, "folds: 'some': give all or a list"),
    ({"config": DEMO, "grid": {"model_name_or_path": ["a"]}, "fixed": {"fold": 1}}, "fold does not apply"),
    ({"grid": {"model_name_or_path": ["a"]}}, "needs config:"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_the_fix(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        read_sweep(path)
    line = str(err.value)
    assert line.startswith(f"{path}: ") and message in line and "\n" not in line, line


def test_the_command_answers_a_missing_file_in_one_line(tmp_path, capsys):
    assert sweep_main([str(tmp_path / "nope.yaml"), "--output_dir", str(tmp_path / "out")], prog="ser-hf sweep") == 2
    err = capsys.readouterr().err
    assert "no such file" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_two_workers_share_a_sweep_one_dies_and_one_table_per_corpus_is_written(ravdess_tree, tmp_path,
                                                                                postgres_url):
    sweep, out, logs = _write(tmp_path, _sweep(ravdess_tree)), tmp_path / "sweep", tmp_path / "logs"
    logs.mkdir()
    argv = [str(sweep), "--output_dir", str(out), "--storage", postgres_url, "--heartbeat_interval", "1",
            "--grace_period", "4"]
    started = time.monotonic()
    handles = [open(logs / f"worker_{i}.log", "wb") for i in range(2)]
    workers = [start_worker("sweep", argv, handle) for handle in handles]
    try:
        study_name = default_study_name("sweep", out)
        pid, killed = running_trial(  # its fold's training process started
            lambda: optuna.load_study(study_name=study_name, storage=storage_url(postgres_url)), workers,
            lambda t: (out / str(t.params.get("setting")) / "logs" / f"fold_{t.params.get('fold')}.log").is_file())
        victim = next(w for w in workers if w.pid == pid)
        victim.send_signal(signal.SIGKILL)  # mid-cell: its fold's training process dies with it
        victim.wait()
        survivor = next(w for w in workers if w is not victim)
        code = survivor.wait(timeout=300)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        for handle in handles:
            handle.close()
    print(f"2 workers, 2 settings x 2 folds, one worker killed: {time.monotonic() - started:.1f} s")
    assert code == 0, [(logs / f"worker_{i}.log").read_text()[-3000:] for i in range(2)]

    study = optuna.load_study(study_name=default_study_name("sweep", out), storage=storage_url(postgres_url))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted((t.params["setting"], t.params["fold"]) for t in complete) == [
        ("one-layer", 0), ("one-layer", 1), ("two-layer", 0), ("two-layer", 1)]  # every cell once
    assert len(trials) == 5  # the 4 cells and one retry, nothing else
    lost = trials[killed.number]
    assert lost.state == optuna.trial.TrialState.FAIL and lost.user_attrs["worker"].endswith(f":{pid}")
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == lost.params

    written = [i for i in range(2) if b"sweep_results.json" in (logs / f"worker_{i}.log").read_bytes()]
    assert len(written) == 1
    summary = json.loads((out / "sweep_results.json").read_text())
    assert set(summary["settings"]) == {"one-layer", "two-layer"}
    assert all(len(s["folds"]) == 2 for s in summary["settings"].values())
    assert summary["settings"]["two-layer"]["layers"] and summary["settings"]["one-layer"]["layers"] is None
    table = (out / "sweep_results.md").read_text()
    assert table.count("## ravdess") == 1 and "| one-layer | 2 |" in table and "Per-layer probe of two-layer" in table
    assert (out / "one-layer" / "fold_1" / "ser_results.json").is_file()
    assert (out / "two-layer" / "crossval_results.md").is_file()
    assert files_holding(out, PASSWORD) == [] and files_holding(logs, PASSWORD) == []

    # The same sweep on one machine (no --storage) over the finished cells: nothing retrained, the report again.
    fold_log = out / "one-layer" / "logs" / "fold_0.log"
    before = fold_log.read_bytes()
    (out / "sweep_results.md").unlink()
    assert sweep_main([str(sweep), "--output_dir", str(out)], prog="ser-hf sweep") == 0
    assert fold_log.read_bytes() == before and "| two-layer | 2 |" in (out / "sweep_results.md").read_text()

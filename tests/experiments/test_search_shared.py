"""One study, several workers: `ser-hf search --storage postgresql://...` started three times on a real PostgreSQL
server (tests/postgres.py), one worker killed (SIGKILL) mid-trial. The study ends with exactly --n_trials complete
trials, the killed trial failed by its missing heartbeat and retried once, with the same parameters in the same run
dir, by another worker; the report is written once; the password is nowhere under the output dir or in the logs.
Probe trials (the head on cached encoder features) on generated RAVDESS-layout audio keep it to about a minute."""

import json
import signal
import time
from pathlib import Path

import optuna
import pytest

from ser_hf.commands.search import main as search_main
from ser_hf.experiments.storage_url import redact_storage_args, redact_url, storage_url
from ser_hf.experiments.study import STUDY_NAME
from tests.conftest import TINY_ENCODER
from tests.postgres import PASSWORD
from tests.shared_workers import files_holding, running_trial, start_worker

ROOT = Path(__file__).resolve().parents[2]
MODEL = {**TINY_ENCODER, "num_hidden_layers": 2, "feat_extract_norm": "layer"}
N_TRIALS = 4


def _argv(data_dir, output_dir, url, **extra):
    fields = {"corpus": "ravdess", "data_dir": data_dir, "download": "false", "n_folds": 4, "test_fold": 3,
              "model_config_overrides": json.dumps(MODEL), "probe": "true", "probe_epochs": 150,
              "probe_patience": 0, "probe_layer_analysis": "false", "per_device_eval_batch_size": 4,
              "output_dir": output_dir, "storage": url, "n_trials": N_TRIALS, "folds": "0,1", "parallel": 2,
              "pruner": "none", "baseline": "false", "heartbeat_interval": 1, "grace_period": 8, **extra}
    return [str(ROOT / "recipes/configs/demo.yaml"), *(s for k, v in fields.items() for s in (f"--{k}", str(v)))]


def _study(url):
    return optuna.load_study(study_name=STUDY_NAME, storage=storage_url(url))


@pytest.mark.slow
def test_workers_share_one_study_and_a_dead_workers_trial_is_retried_once(ravdess_tree, tmp_path, postgres_url):
    out, logs = tmp_path / "search", tmp_path / "logs"
    logs.mkdir()
    argv = _argv(ravdess_tree, out, postgres_url)
    started = time.monotonic()
    handles = [open(logs / f"worker_{i}.log", "wb") for i in range(3)]
    workers = [start_worker("search", argv, handles[i]) for i in range(2)]
    try:
        # Its parameters drawn and not trial 0 (the config as it is): a trial the retry must reproduce.
        pid, killed = running_trial(lambda: _study(postgres_url), workers,
                                    lambda trial: trial.number > 0 and len(trial.params) == 4)
        killed = killed.number
        victim = next(w for w in workers if w.pid == pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        workers.append(start_worker("search", argv, handles[2]))  # a worker joining late takes its share too
        codes = {w.pid: w.wait(timeout=400) for w in workers if w is not victim}
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        for handle in handles:
            handle.close()
    wall = time.monotonic() - started
    print(f"3 workers, {N_TRIALS} trials, one worker killed: {wall:.1f} s")
    assert set(codes.values()) == {0}, [(logs / f"worker_{i}.log").read_text()[-3000:] for i in range(3)]

    study = _study(postgres_url)
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == N_TRIALS
    assert not [t.number for t in trials if t.state in (optuna.trial.TrialState.RUNNING,
                                                        optuna.trial.TrialState.WAITING)]
    # The killed worker's trial failed by its heartbeat, and exactly one retry ran it: same parameters, same run dir.
    lost = trials[killed]
    assert lost.state == optuna.trial.TrialState.FAIL and lost.user_attrs["worker"].endswith(f":{pid}")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and [t.state for t in retries] == [optuna.trial.TrialState.COMPLETE]
    retry = retries[0]
    assert retry.params == lost.params and retry.user_attrs["run_dir"] == lost.user_attrs["run_dir"]
    assert retry.user_attrs["lost_worker"] == lost.user_attrs["worker"] != retry.user_attrs["worker"]
    assert len(states) == N_TRIALS + 1  # no trial beyond the N and the one retry

    # Each run dir ran to the end once: its tries' records (one file each) hold one COMPLETE.
    for trial in trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        records = [json.loads(p.read_text()) for p in (out / trial.user_attrs["run_dir"] / "attempts").glob("*.json")]
        assert [r["state"] for r in records].count("COMPLETE") == 1, (trial.number, records)
    killed_records = (out / lost.user_attrs["run_dir"] / "attempts").glob("*.json")
    assert {json.loads(p.read_text())["state"] for p in killed_records} == {"RUNNING", "COMPLETE"}

    # The report: written once, by one worker, covering the N trials; the best config's cross-validation with it.
    written = [i for i in range(3) if b"search_results.json" in (logs / f"worker_{i}.log").read_bytes()]
    assert len(written) == 1, written
    assert study.user_attrs["report"]["finished"] == N_TRIALS
    summary = json.loads((out / "search_results.json").read_text())
    assert summary["trials"] == {"COMPLETE": N_TRIALS, "FAIL": 1}
    assert summary["storage"] == redact_url(postgres_url) and "***" in summary["storage"]
    assert (out / summary["best"]["run_dir"] / "crossval_results.json").is_file()
    rows = {r.split(",")[0]: r for r in (out / "trials.csv").read_text().splitlines()[1:]}
    assert f"retried as trial {retry.number}" in rows[str(killed)] and f"retry of trial {killed}" in rows[
        str(retry.number)]

    # The password: in no file under the output dir (fold model cards, configs, reports) and in no log.
    assert files_holding(out, PASSWORD) == [] and files_holding(logs, PASSWORD) == []


def test_a_worker_with_another_setup_is_refused_in_one_line(ravdess_tree, tmp_path, postgres_url, capsys):
    out = tmp_path / "search"
    # A first worker with --folds 0,2 creates the study (--report true: it stores the setup and runs no trial).
    search_main(_argv(ravdess_tree, out, postgres_url, folds="0,2", report="true"), prog="ser-hf search")
    capsys.readouterr()
    assert _study(postgres_url).user_attrs["setup"]["folds"] == [0, 2]
    code = search_main(_argv(ravdess_tree, out, postgres_url), prog="ser-hf search")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "searched with other folds (folds: [0, 1] here, [0, 2] in the study)" in err
    assert PASSWORD not in err and redact_url(postgres_url) in err
    assert not list(out.glob("trial_*"))  # refused before any trial
    assert _study(postgres_url).get_trials() == [] or all(
        t.state == optuna.trial.TrialState.WAITING for t in _study(postgres_url).get_trials())


def test_the_password_is_hidden_in_saved_command_lines_and_urls():
    url = "postgresql://ser:p@ss/w0rd@db.example:5432/studies?sslmode=require"
    assert redact_url(url) == "postgresql://ser:***@db.example:5432/studies?sslmode=require"
    in_query = "postgresql://ser@db/studies?password=hunter2&x=1"
    assert redact_url(in_query) == "postgresql://ser@db/studies?password=***&x=1"
    assert redact_storage_args(["c.yaml", "--storage", url, f"--storage={url}"]) == [
        "c.yaml", "--storage", redact_url(url), f"--storage={redact_url(url)}"]
    assert storage_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"  # the installed driver


def test_an_unreachable_database_or_another_kind_is_one_line(tmp_path, capsys, ravdess_tree):
    for url, message in (("mysql://u:secret@h/db", "a shared study needs PostgreSQL"),
                         ("postgresql://u:secret@127.0.0.1:1/db", "cannot connect to the database")):
        code = search_main(_argv(ravdess_tree, tmp_path / "out", url), prog="ser-hf search")
        err = capsys.readouterr().err
        assert code == 2 and message in err and "secret" not in err and len(err.strip().splitlines()) == 1, err

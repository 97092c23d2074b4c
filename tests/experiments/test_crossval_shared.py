"""One cross-validation, several workers: `ser-hf cv --storage postgresql://...` started twice on a real PostgreSQL
server (tests/postgres.py), one worker killed (SIGKILL) while its fold trains. Every fold ends finished exactly once,
the killed fold retried once by the other worker, the report written once, the password nowhere. A probe
cross-validation (the head on cached encoder features) of 2 folds on generated RAVDESS-layout audio keeps it short."""

import json
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest

from ser_hf.commands.crossval import main as cv_main
from ser_hf.experiments.shared_study import default_study_name
from ser_hf.experiments.storage_url import redact_url, storage_url
from tests.conftest import TINY_ENCODER
from tests.postgres import PASSWORD
from tests.shared_workers import files_holding, running_trial, start_worker

ROOT = Path(__file__).resolve().parents[2]
MODEL = {**TINY_ENCODER, "num_hidden_layers": 2, "feat_extract_norm": "layer"}
FOLDS = 2


def _argv(data_dir, output_dir, url, **extra):
    fields = {"corpus": "ravdess", "data_dir": data_dir, "download": "false", "n_folds": FOLDS,
              "model_config_overrides": json.dumps(MODEL), "probe": "true", "probe_epochs": 60, "probe_patience": 0,
              "probe_layer_analysis": "false", "per_device_eval_batch_size": 4, "output_dir": output_dir,
              "storage": url, "baseline": "false", "heartbeat_interval": 1, "grace_period": 4, **extra}
    return [str(ROOT / "recipes/configs/demo.yaml"), *(s for k, v in fields.items() for s in (f"--{k}", str(v)))]


def _study(url, out):
    return optuna.load_study(study_name=default_study_name("cv", out), storage=storage_url(url))


@pytest.mark.slow
def test_workers_share_one_crossval_and_a_dead_workers_fold_is_retried_once(ravdess_tree, tmp_path, postgres_url):
    out, logs = tmp_path / "cv", tmp_path / "logs"
    logs.mkdir()
    argv = _argv(ravdess_tree, out, postgres_url)
    started = time.monotonic()
    handles = [open(logs / f"worker_{i}.log", "wb") for i in range(2)]
    workers = [start_worker("cv", argv, handle) for handle in handles]
    try:
        pid, killed = running_trial(lambda: _study(postgres_url, out), workers,  # its training process started
                                    lambda trial: (out / "logs" / f"fold_{trial.params.get('fold')}.log").is_file())
        victim = next(w for w in workers if w.pid == pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        survivor = next(w for w in workers if w is not victim)
        code = survivor.wait(timeout=300)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        for handle in handles:
            handle.close()
    print(f"2 workers, {FOLDS} folds, one worker killed: {time.monotonic() - started:.1f} s")
    assert code == 0, [(logs / f"worker_{i}.log").read_text()[-3000:] for i in range(2)]

    study = _study(postgres_url, out)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["fold"] for t in complete) == list(range(FOLDS))  # each fold once
    assert len(trials) == FOLDS + 1  # the folds and one retry, nothing else
    lost = trials[killed.number]
    assert lost.state == optuna.trial.TrialState.FAIL and lost.user_attrs["worker"].endswith(f":{pid}")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == lost.params and retries[0].user_attrs["lost_worker"] == lost.user_attrs["worker"]

    # Each fold ran to the end once: its tries' records hold one COMPLETE (the killed fold: RUNNING, then COMPLETE).
    for k in range(FOLDS):
        states = [json.loads(p.read_text())["state"] for p in (out / "attempts" / f"fold_{k}").glob("*.json")]
        assert states.count("COMPLETE") == 1, (k, states)
    killed_states = {json.loads(p.read_text())["state"]
                     for p in (out / "attempts" / f"fold_{killed.params['fold']}").glob("*.json")}
    assert killed_states == {"RUNNING", "COMPLETE"}

    # The report: written once (by the survivor), the files a one-machine `ser-hf cv` writes.
    written = [i for i in range(2) if b"crossval_results.json" in (logs / f"worker_{i}.log").read_bytes()]
    assert len(written) == 1 and study.user_attrs["report"]["finished"] == FOLDS
    report = json.loads((out / "crossval_results.json").read_text())
    assert [row["fold"] for row in report["folds"]] == list(range(FOLDS))
    assert (out / "crossval_results.md").is_file() and (out / "confusion_matrix.png").is_file()

    assert files_holding(out, PASSWORD) == [] and files_holding(logs, PASSWORD) == []
    assert redact_url(postgres_url) in (out / "fold_0" / "README.md").read_text()  # the saved command line


def test_a_cv_worker_with_other_folds_is_refused_in_one_line(ravdess_tree, tmp_path, postgres_url, capsys):
    out = tmp_path / "cv"
    with pytest.raises(SystemExit, match="0"):  # --help: the options are there
        cv_main(["--help"], prog="ser-hf cv")
    capsys.readouterr()
    # A study created by a first worker with --folds 0,2 (what `open` stores before any data work).
    from ser_hf.experiments.shared_crossval import SharedOptions
    from ser_hf.experiments.shared_folds import Cell

    setup_of = {"command": "cv", "folds": [0, 2], "test_fold": None, "config": {}}
    SharedOptions(postgres_url).open("cv", out, setup_of, [Cell("", 0, out, "c.yaml")])
    code = cv_main(_argv(ravdess_tree, out, postgres_url), prog="ser-hf cv")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "with other config, folds (config." in err and PASSWORD not in err and redact_url(postgres_url) in err
    assert not (out / "fold_0").exists()  # refused before any fold

    code = cv_main(_argv(ravdess_tree, out, "sqlite:///x.db"), prog="ser-hf cv")
    err = capsys.readouterr().err
    assert code == 2 and "workers share a study through PostgreSQL" in err, err


def test_workers_opening_an_empty_database_at_once_do_not_collide(postgres_url):
    # optuna creates its tables and PostgreSQL enum types in an empty database; without the schema lock two workers
    # started together collided there ("duplicate key value violates unique constraint pg_type_typname_nsp_index").
    from ser_hf.experiments.shared_study import Heartbeat, shared_storage

    barrier, errors = threading.Barrier(4), []

    def open_storage():
        barrier.wait()
        try:
            shared_storage(postgres_url, Heartbeat(1, 4))
        except Exception as err:  # noqa: BLE001 (the test reports any)
            errors.append(repr(err)[:300])

    threads = [threading.Thread(target=open_storage) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

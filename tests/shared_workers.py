"""Workers of a shared study as the multi-machine tests start and watch them: `ser-hf COMMAND` subprocesses, the
trial one of them is running (to kill it mid-unit), and the files that hold a secret."""

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna


def start_worker(command, argv, log):
    """`ser-hf COMMAND ARGV` in the background, its output to the open file `log`, on one thread."""
    return subprocess.Popen([sys.executable, "-m", "ser_hf.cli", command, *argv], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def running_trial(load_study, workers, under_way, timeout=240):
    """(worker pid, trial) of a RUNNING trial of one of `workers` for which `under_way(trial)` holds.

    Args:
        load_study: () -> the study (raises KeyError until a worker created it).
        workers: the worker processes; one that exits while we wait fails the test.
        under_way: trial -> whether it is far enough along to be killed mid-unit.
        timeout: seconds to wait.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.poll() is None, f"worker {worker.pid} ended early (exit {worker.returncode})"
        try:
            trials = load_study().get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        except KeyError:  # the study is not created yet
            trials = []
        pids = {w.pid for w in workers}
        for trial in trials:
            pid = int(trial.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if pid in pids and under_way(trial):
                return pid, trial
        time.sleep(0.05)
    raise AssertionError("no worker started a unit in time")


def files_holding(root, secret):
    """The files under `root` whose bytes contain `secret`."""
    return [str(p) for p in Path(root).rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]

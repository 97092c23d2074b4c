"""Folds as the trials of a shared study: the unit of work of `ser-hf cv --storage` and `ser-hf sweep`.

A cell is one fold of one setting (a cross-validation has one setting, a sweep one per grid point). Every cell is
queued up front as a trial with fixed parameters ("fold", and "setting" in a sweep) by the worker that creates the
study, so `shared_study.next_trial(new_trials=False)` only ever hands out queued cells: a worker takes one, runs
it as `ser-hf cv` runs a fold (`crossval.run_folds`: an ordinary `ser-hf train` process in ROOT/fold_k, resumed from
its newest intact checkpoint), and scores the trial with the fold's UA. A dead worker's cell is failed by its
missing heartbeat and queued once more (`shared_study`); the retry runs in the same fold dir.
"""

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from ser_hf.evaluation.fold_summary import collect_fold_results, fold_dir
from ser_hf.experiments.crossval import run_folds
from ser_hf.experiments.shared_study import remove_lost_locks, study_lock, worker_id
from ser_hf.storage import write_text_atomic
from ser_hf.training.output_dir import LOCK_NAME

logger = logging.getLogger(__name__)

ATTEMPTS_DIR = "attempts"  # ROOT/attempts/fold_<k>/trial_<n>.json: who ran which try of a fold, and how it ended


class CellFailed(RuntimeError):
    """The fold's training run did not finish (it crashed or diverged): the trial fails, the others go on."""


@dataclass(frozen=True)
class Cell:
    """One fold of one setting.

    Attributes:
        setting: the setting's slug in a sweep; "" in a cross-validation.
        fold: the held-out fold.
        root: the setting's cross-validation dir; the fold trains in root/fold_<fold>.
        config: the recipe YAML.
        overrides: the setting's `--field value` arguments (without --fold / --output_dir).
        split: the split each fold reports ("validation", or "test" under --held_out_split test).
    """

    setting: str
    fold: int
    root: Path
    config: str
    overrides: tuple = ()
    split: str = "validation"

    @property
    def params(self):
        """The trial's fixed parameters."""
        return {"setting": self.setting, "fold": self.fold} if self.setting else {"fold": self.fold}

    @property
    def name(self):
        return f"{self.setting}/fold_{self.fold}" if self.setting else f"fold_{self.fold}"


def queued_cells(cells):
    """[(params, user_attrs)] of every cell: what the first worker queues (`open_shared_study(first_trials=...)`)."""
    return [(cell.params, {"cell": cell.name}) for cell in cells]


def _cell_key(params):
    return params.get("setting", ""), params["fold"]


def requeue_failed_cells(study, cells):
    """Queue again every cell that only failed: a worker joining a finished study redoes them, as a rerun of a
    one-machine `ser-hf cv` retrains a crashed fold. Cells done, running or queued are left alone.

    Returns:
        The names of the cells queued again.
    """
    with study_lock(study, study.study_name, "trials"):
        taken = set()
        for trial in study.get_trials(deepcopy=False):
            if trial.state != optuna.trial.TrialState.FAIL:
                # A queued trial has no params yet (they are fixed in its system attributes): its cell names it.
                taken.add(trial.user_attrs.get("cell"))
        again = [cell for cell in cells if cell.name not in taken]
        for params, user_attrs in queued_cells(again):
            study.enqueue_trial(params, user_attrs=user_attrs)
    if again:
        logger.warning("Queued again the cell(s) that failed before: %s", ", ".join(c.name for c in again))
    return [cell.name for cell in again]


def _record_attempt(cell, trial, state, started):
    """ROOT/attempts/fold_<k>/trial_<n>.json: this try's worker, start, end and state (one file per try, its own;
    beside the fold dir, not in it: the fold dir is the training run's)."""
    write_text_atomic(Path(cell.root) / ATTEMPTS_DIR / f"fold_{cell.fold}" / f"trial_{trial.number}.json", json.dumps({
        "trial": trial.number, "cell": cell.name, "worker": worker_id(), "state": state, "started": started,
        "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z") if state != "RUNNING" else None}, indent=2))


class CellObjective:
    """What a worker runs for a trial: its cell's fold, as `ser-hf cv` runs it; the trial's value is the fold's UA
    (CCC for --task dimensional).

    Args:
        cells: every `Cell` of the study.
        launcher: how fold processes start (`shared_study.fold_launcher(...)`: they die with this worker).
        command: the command line shown on each fold's model card (its password hidden).
    """

    def __init__(self, cells, launcher=None, command=None):
        self.cells = {(c.setting, c.fold): c for c in cells}
        self.launcher, self.command = launcher, command
        self.settings = sorted({c.setting for c in cells})
        self.folds = sorted({c.fold for c in cells})

    def __call__(self, trial):
        fold = trial.suggest_categorical("fold", self.folds)
        setting = trial.suggest_categorical("setting", self.settings) if self.settings != [""] else ""
        cell = self.cells[(setting, fold)]
        trial.set_user_attr("cell", cell.name)
        started, state = time.strftime("%Y-%m-%dT%H:%M:%S%z"), "FAIL"
        _record_attempt(cell, trial, "RUNNING", started)
        # A retry of a cell whose worker died on another host: its fold lock cannot be checked from here.
        remove_lost_locks(trial.user_attrs.get("lost_worker"), [fold_dir(cell.root, fold)], LOCK_NAME)
        try:
            status = run_folds(cell.config, list(cell.overrides), [fold], cell.root, launcher=self.launcher,
                               command=self.command)[fold]
            result = collect_fold_results(cell.root, [fold], split=cell.split).get(fold)
            if result is None:
                trial.set_user_attr("error", status)
                raise CellFailed(f"{cell.name} {status}")
            state = "COMPLETE"
            return float(result["ua"] if "ua" in result else result["ccc"])
        finally:
            _record_attempt(cell, trial, state, started)


def cell_status(study, cells):
    """{(setting, fold): "finished" | "failed (...)"} from the study: a cell is finished when one of its trials
    completed, else failed with its last error."""
    status = {(c.setting, c.fold): "failed (not run)" for c in cells}
    for trial in study.get_trials(deepcopy=False):
        if not trial.params:
            continue
        key = _cell_key(trial.params)
        if key not in status or status[key] == "finished":
            continue
        if trial.state == optuna.trial.TrialState.COMPLETE:
            status[key] = "finished"
        elif trial.state == optuna.trial.TrialState.FAIL:
            why = trial.user_attrs.get("error") or f"trial {trial.number}: its worker stopped"
            status[key] = f"failed ({why})"
    return status

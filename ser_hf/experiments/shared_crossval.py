"""One cross-validation run by many workers (`ser-hf cv --storage postgresql://...`): each takes the next unfinished
fold, the report is written once.

The folds are the trials of a shared study (`ser_hf.experiments.shared_folds`), queued up front by the worker that
creates it; every worker prepares the corpus for itself (scan, decoded audio, the probe cache: entries written
atomically, so workers filling them at once only repeat work), runs folds until none is queued or running, and the
first to take the report lock once all are done writes the files a one-machine `ser-hf cv` writes
(`crossval.pool_report`).
"""

import logging
from dataclasses import dataclass

import optuna

from ser_hf.errors import UsageError, count
from ser_hf.experiments.crossval import parse_crossval, pool_report, prepare_crossval
from ser_hf.experiments.search_space import config_values
from ser_hf.experiments.shared_folds import (
    Cell,
    CellFailed,
    CellObjective,
    cell_status,
    queued_cells,
    requeue_failed_cells,
)
from ser_hf.experiments.shared_study import (
    Heartbeat,
    default_study_name,
    fold_launcher,
    open_shared_study,
    report_once,
    run_shared_trials,
    worker_slug,
)
from ser_hf.experiments.storage_url import is_shared, redact_url, storage_url
from ser_hf.experiments.study import check_setup
from ser_hf.reporting.crossval_report import markdown_table

logger = logging.getLogger(__name__)

MAX_FAILURES_IN_A_ROW = 3  # folds crashing one after another on a worker: the config is wrong, not the luck


@dataclass
class SharedOptions:
    """Where and how workers share a study.

    Attributes:
        storage: the PostgreSQL URL (--storage).
        study_name: the study's name there (None: `shared_study.default_study_name` of the command and output dir).
        heartbeat_interval, grace_period: see `shared_study.Heartbeat`.
    """

    storage: str
    study_name: str | None = None
    heartbeat_interval: int = Heartbeat.interval
    grace_period: int = Heartbeat.grace

    def open(self, command, root, setup, cells):
        """The shared study of `cells` (created with every cell queued, or joined after the setup check)."""
        if not is_shared(self.storage):
            raise UsageError(f"--storage {redact_url(self.storage)}: workers share a study through PostgreSQL "
                             "(postgresql://USER:PASSWORD@HOST:PORT/DB); leave --storage out to run on one machine")
        storage_url(self.storage)  # a URL that cannot be shared is refused before any data work
        study = open_shared_study(self.storage, self.study_name or default_study_name(command, root), setup,
                                  check_setup, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner(),
                                  Heartbeat(self.heartbeat_interval, self.grace_period),
                                  first_trials=queued_cells(cells))
        requeue_failed_cells(study, cells)
        return study


def run_cells(study, cells, launcher, command):
    """Run queued cells on this worker until none is queued or running.

    Returns:
        (False after MAX_FAILURES_IN_A_ROW failed cells in a row here, else True; {(setting, fold): status}).
    """
    objective = CellObjective(cells, launcher=fold_launcher(launcher), command=command)
    ok = run_shared_trials(study, objective, len(cells), catch=(CellFailed,), max_failures=MAX_FAILURES_IN_A_ROW,
                           new_trials=False)
    return ok, cell_status(study, cells)


def cross_validate_shared(config, overrides, folds, options, launcher=None, baseline=True, command=None):
    """`ser-hf cv --storage`: this worker's share of one cross-validation, and the report if it falls to it.

    Args:
        config, overrides, folds, launcher, baseline, command: as `crossval.cross_validate` (`--output_dir`: the
            folder every worker reaches).
        options: `SharedOptions`.

    Returns:
        The exit code: 0 when every fold finished (the report written here or by another worker), 1 otherwise.

    Raises:
        UsageError: a bad setting, a database that cannot be shared or reached, or a study with another setup.
    """
    model_args, data_args, training_args, root, chosen, overrides = parse_crossval(config, overrides, folds)
    task, split = training_args.task, "test" if data_args.held_out_split == "test" else "validation"
    setup = {"command": "cv", "folds": chosen, "test_fold": data_args.test_fold,
             "config": {k: v for k, v in config_values(config, overrides).items() if k != "output_dir"}}
    cells = [Cell("", k, root, config, tuple(overrides), split) for k in chosen]
    study = options.open("cv", root, setup, cells)
    probe_args = (model_args, training_args) if training_args.probe else None
    corpus, prepared = prepare_crossval(data_args, root, probe_args, task, report_dir=root / "workers" / worker_slug())
    ok, status = run_cells(study, cells, launcher, command)
    status = {k: status[("", k)] for k in chosen}
    failed = {k: s for k, s in status.items() if s != "finished"}

    def write():
        report = pool_report(data_args, chosen, root, corpus, prepared, status, baseline=baseline, task=task)
        if report is None:
            logger.error("no fold finished: %s", status)
            return 1
        print(markdown_table(report))
        print(f"wrote {root}/crossval_results.json, crossval_results.md and the pooled confusion matrices")
        return 0

    code = report_once(study, len(chosen) - len(failed), write)
    if code is None:
        print(f"the cross-validation's folds are done; another worker writes (or wrote) the report in {root}")
    for k, s in failed.items():
        logger.error("fold %d %s", k, s)
    if failed:
        logger.error("%s failed; the table covers the others. Start a worker again with the same command: it "
                     "retrains them (finished folds are kept, interrupted ones resume).", count(len(failed), "fold"))
    return 1 if failed or not ok or code else 0

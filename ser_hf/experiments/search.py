"""Bayesian hyperparameter search over speaker folds (`ser-hf search`): trials until the study holds enough, then
the report and the best config's cross-validation.

    run_search(config, overrides, SearchSettings(n_trials=20, test_fold=None, ...), command)

The space and the trial configs are `ser_hf.experiments.search_space`, the study `ser_hf.experiments.study`, what a
trial runs `ser_hf.experiments.search_objectives`; the report files `ser_hf.reporting.search_report`. With a
PostgreSQL `--storage`, any number of workers (the same command on several machines, one output dir they all reach)
run one study between them: `ser_hf.experiments.shared_study`.
"""

import dataclasses
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import optuna

from ser_hf.config import parse_config
from ser_hf.console import pop_option
from ser_hf.data.prepare import resolve_data_args
from ser_hf.errors import UsageError
from ser_hf.experiments.crossval import prepare_folds, run_crossval, validation_folds
from ser_hf.experiments.search_objectives import FineTuneObjective, ProbeObjective, TrialFailed, prepare_probe_folds
from ser_hf.experiments.search_space import (
    check_space_values,
    config_defaults,
    config_values,
    parse_search_space,
    trial_config,
)
from ser_hf.experiments.shared_study import (
    Heartbeat,
    fold_launcher,
    open_shared_study,
    report_once,
    run_shared_trials,
    worker_seed,
    worker_slug,
)
from ser_hf.experiments.storage_url import is_shared, redact_url, storage_url
from ser_hf.experiments.study import (
    STUDY_NAME,
    best_trial,
    check_setup,
    default_storage,
    finished_trials,
    make_pruner,
    open_study,
    recover_killed_trials,
)
from ser_hf.reporting.search_report import (
    BEST_CONFIG,
    plot_search,
    search_summary,
    trial_rows,
    write_best_config,
    write_search_report,
)
from ser_hf.training.output_dir import OutputDirLock
from ser_hf.training.probe import head_model_args

logger = logging.getLogger(__name__)

MAX_FAILURES_IN_A_ROW = 3  # a config that crashes every trial is a bug to fix, not a search to continue


@dataclass
class SearchSettings:
    """How a search runs (the options of `ser-hf search` besides the recipe's own fields).

    Attributes:
        n_trials: finished (complete or pruned) trials the study should hold; a rerun continues to it.
        folds: comma-separated validation folds of every trial (None: all but the test fold).
        storage: optuna storage URL (None: sqlite:///OUTPUT_DIR/study.db).
        pruner: median, halving or none.
        sampler_seed: seed of the TPE sampler.
        parallel, launcher: how fine-tuning folds start (as `ser-hf cv`).
        final_cv: cross-validate the best config at the end (its test-fold ensemble with --test_fold).
        baseline: the final cross-validation runs the SVM baseline on the same folds.
        heartbeat_interval, grace_period: a shared study's heartbeats (`ser_hf.experiments.shared_study.Heartbeat`).
        report_only: write the report of the study as it stands and run no trial.
        study_name: the study's name in the storage (None: "ser_hf_search", the name every search so far used, so
            their studies still load; give another to keep two searches in one database apart).
    """

    n_trials: int = 20
    folds: str | None = None
    storage: str | None = None
    pruner: str = "median"
    sampler_seed: int = 0
    parallel: int = 1
    launcher: str | None = None
    final_cv: bool = True
    baseline: bool = True
    heartbeat_interval: int = Heartbeat.interval
    grace_period: int = Heartbeat.grace
    report_only: bool = False
    study_name: str | None = None


def _run_trials(study, objective, n_trials):
    """Run trials until the study holds n_trials finished ones. Returns False after too many failures in a row."""
    failures = 0
    while len(finished_trials(study)) < n_trials:
        try:
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        except KeyboardInterrupt:
            recover_killed_trials(study)  # queued for the next run of the same command
            raise
        last = study.trials[-1]
        failures = failures + 1 if last.state == optuna.trial.TrialState.FAIL else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            logger.error("%d trials in a row failed (last: %s): fix the config before searching further", failures,
                         last.user_attrs.get("error", "see the log"))
            return False
    return True


def run_search(config, overrides, settings, command):
    """The search itself (see the module docstring).

    Args:
        config: the recipe YAML holding `search_space` (or `probe_search_space` with --probe true).
        overrides: `--field value` arguments for every trial (and the best config); --output_dir is the search's.
        settings: `SearchSettings`.
        command: the command line shown on the reports and fold cards.

    Returns:
        The exit code: 0 when the study completed (and the best config's cross-validation finished), 1 otherwise.

    Raises:
        UsageError: a config without a space, folds that cannot be searched, a space value the recipe refuses,
            or a study in the storage that searched something else.
    """
    overrides = list(overrides)
    root_arg = pop_option(overrides, "output_dir")
    model_args, data_args, training_args = parse_config(config, overrides, single_fold=False)
    data_args = resolve_data_args(data_args)
    if data_args.train_manifest:
        raise UsageError("the config sets train_manifest; a search holds out each speaker fold in turn")
    if training_args.task == "dimensional":  # its trials score UA (search_objectives.py)
        raise UsageError("`ser-hf search` scores emotion classifiers by UA; it does not search --task dimensional "
                         "(run `ser-hf cv` per setting, which reports CCC)")
    folds = validation_folds(settings.folds, data_args)
    for k in folds:  # --probe / --init_head_from checked now, for every fold
        head_model_args(model_args, dataclasses.replace(data_args, fold=k), training_args)
    probe = training_args.probe
    key = "probe_search_space" if probe else "search_space"
    base = config_values(config, overrides)
    if key not in base:
        raise UsageError(f"{config} has no {key}: add one (recipes/configs/demo.yaml has both kinds)")
    params = parse_search_space(base[key], f"{config}: {key}", probe=probe)
    root = Path(root_arg or f"{training_args.output_dir.rstrip('/')}_search")
    shared = is_shared(settings.storage)
    if shared:
        storage_url(settings.storage)  # a URL that cannot be shared is refused before any data work
    setup = {"mode": "probe" if probe else "fine-tune", "folds": folds, "test_fold": data_args.test_fold,
             "space": base[key], "config": {k: v for k, v in base.items() if k not in ("output_dir", "search_space",
                                                                                    "probe_search_space")}}
    first_trial = (config_defaults(base, params), {"config_defaults": True})  # the reference every trial beats
    # One search per output dir on one machine (a trial left RUNNING was killed); a shared study's workers all
    # write into the same output dir, each under its own dirs, and coordinate through the database instead.
    with nullcontext() if shared else OutputDirLock(root):
        # What each worker prepares for itself (the scan report, the space's check file) goes to its own dir.
        work_dir = root / "workers" / worker_slug() if shared else root
        work_dir.mkdir(parents=True, exist_ok=True)
        check_space_values(base, params, work_dir)
        study = _open_search_study(settings, root, setup, first_trial, shared)

        def report():
            return _report(study, base, params, folds, data_args, root, command, settings, probe)

        if settings.report_only:
            return _report_now(study, report, shared)
        if probe:
            objective = ProbeObjective(root, base, params, folds,
                                       prepare_probe_folds(model_args, data_args, training_args, folds, work_dir))
        else:
            prepare_folds(dataclasses.replace(data_args, fold=folds[0]), work_dir)  # once, before parallel folds
            objective = FineTuneObjective(root, base, params, folds, parallel=settings.parallel,
                                          launcher=fold_launcher(settings.launcher) if shared else settings.launcher,
                                          command=command)
        if not shared:
            return report() if _run_trials(study, objective, settings.n_trials) else 1
        if not run_shared_trials(study, objective, settings.n_trials, catch=(TrialFailed,),
                                 max_failures=MAX_FAILURES_IN_A_ROW):
            return 1
        code = report_once(study, len(finished_trials(study)), report)
        if code is None:
            print(f"the study's {settings.n_trials} trials are finished; another worker writes (or wrote) the report "
                  f"in {root}")
        return code or 0


def _open_search_study(settings, root, setup, first_trial, shared):
    """The study: shared (joined or created under its setup lock), or this output dir's own (killed trials queued
    again: only one search runs here). A new study starts with `first_trial` queued."""
    if shared:
        heartbeat = Heartbeat(settings.heartbeat_interval, settings.grace_period)
        return open_shared_study(settings.storage, settings.study_name or STUDY_NAME, setup, check_setup,
                                 _shared_sampler(settings), make_pruner(settings.pruner), heartbeat,
                                 first_trials=[first_trial])
    study = open_study(settings.storage or default_storage(root), setup, seed=settings.sampler_seed,
                       pruner=settings.pruner, study_name=settings.study_name or STUDY_NAME)
    recover_killed_trials(study)
    if not study.trials:
        study.enqueue_trial(first_trial[0], user_attrs=first_trial[1])
    return study


def _shared_sampler(settings):
    """TPE for workers running side by side: each its own seed, and `constant_liar` so that a worker does not draw
    next to trials still running on the others (optuna's advice for distributed TPE)."""
    return optuna.samplers.TPESampler(seed=worker_seed(settings.sampler_seed), constant_liar=True)


def _report_now(study, report, shared):
    """`--report true`: the report of the study as it stands (every finished trial so far), no trial run."""
    finished = len(finished_trials(study))
    logger.info("Writing the report of %d finished trial(s) (--report true)", finished)
    if not shared:
        return report()
    code = report_once(study, finished, report, force=True)
    if code is None:
        raise UsageError("another worker is writing this study's report right now: run --report true again when it "
                         "has finished")
    return code


def _report(study, base, params, folds, data_args, root, command, settings, probe):
    """Trials table, plots, best config; then the best config's cross-validation (and test-fold ensemble)."""
    best = best_trial(study)
    rows = trial_rows(study, folds)
    reference = next((t for t in study.trials if t.user_attrs.get("config_defaults")
                      and t.state == optuna.trial.TrialState.COMPLETE), None)
    # The best trial's own dir: fine-tuning trials' folds are already there; a later, better trial gets its own.
    cv_root = root / best.user_attrs["run_dir"] if best is not None else None
    summary = search_summary(study, best, reference, folds, data_args.test_fold, rows,
                             extra={"mode": "probe" if probe else "fine-tune",
                                    "best_cv": str(cv_root) if cv_root else None, "command": command,
                                    "storage": redact_url(settings.storage) or default_storage(root)})
    write_search_report(root, summary, rows)
    plot_search(study, root)
    if best is None:
        logger.error("no trial completed: see %s/trials.md", root)
        return 1
    best_path = write_best_config(trial_config(base, best.params, output_dir=root / "best_model", fold=folds[0]), root / BEST_CONFIG,
                                  summary, command)
    print((root / "search_results.md").read_text())
    print(f"wrote {best_path}, {root}/trials.csv, search_results.json and the plots")
    if not settings.final_cv:
        return 0
    model_args, best_data, training_args = parse_config(best_path, single_fold=False)
    best_data = dataclasses.replace(resolve_data_args(best_data), fold=folds[0])
    report, status = run_crossval(best_path, [], best_data, folds, cv_root, parallel=settings.parallel,
                                  launcher=settings.launcher, baseline=settings.baseline, command=command,
                                  probe_args=(model_args, training_args) if probe else None)
    if report is None or any(s.startswith("failed") for s in status.values()):
        logger.error("the best config's cross-validation did not finish: %s", status)
        return 1
    print(f"the best config's cross-validation: {cv_root}/crossval_results.md")
    return 0

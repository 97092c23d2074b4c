"""The search's Optuna study: created once, continued by every rerun, its interrupted trials queued again.

The study lives in optuna's RDB storage (SQLite by default, `sqlite:///OUTPUT_DIR/study.db`); the trials' configs
and the space are `ser_hf.experiments.search_space`.
"""

import json
import logging
import math
from pathlib import Path

import optuna

from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)


STUDY_NAME = "ser_hf_search"


def default_storage(root):
    """sqlite:///ROOT/study.db (absolute), the study's default home."""
    return f"sqlite:///{(Path(root) / 'study.db').resolve()}"


def make_pruner(name):
    """median (prune a trial below the median of earlier trials at the same fold), halving, or none."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"--pruner {name}: choose median, halving or none")


def open_study(storage, setup, seed=0, pruner="median", study_name=STUDY_NAME):
    """Create the study, or load it and check that it searches the same thing.

    Args:
        storage: an optuna storage URL (sqlite:///...).
        setup: what the objective means (mode, folds, test fold, space, base config); a rerun must match.
        seed: the sampler's seed; shifted by the trials already run, so a continued study does not redraw them.
        pruner: see `make_pruner`.
        study_name: the study's name in the storage (--study_name; the default is what every search so far used).

    Returns:
        optuna.Study (direction maximize: mean validation UA).

    Raises:
        UsageError: the stored study searched another space, other folds or another config.
    """
    kept = optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 60}})
    study = optuna.load_study(study_name=study_name, storage=kept) if study_name in \
        optuna.get_all_study_names(storage=kept) else None
    done = len(study.trials) if study is not None else 0
    sampler = optuna.samplers.TPESampler(seed=seed + done)
    if study is None:
        study = optuna.create_study(study_name=study_name, storage=kept, sampler=sampler,
                                    pruner=make_pruner(pruner), direction="maximize")
        study.set_user_attr("setup", setup)
        return study
    check_setup(study, setup, storage)
    logger.info("Continuing the study in %s: %d trial(s) so far", storage, done)
    return optuna.load_study(study_name=study_name, storage=kept, sampler=sampler, pruner=make_pruner(pruner))


def check_setup(study, setup, where):
    """Refuse to continue a study that searched something else, naming what differs.

    Args:
        study: the stored study.
        setup: this command's setup (mode, folds, test fold, space, base config).
        where: the storage as it may be shown (its password hidden).

    Raises:
        UsageError: the stored setup differs (or there is none).
    """
    stored = study.user_attrs.get("setup")
    if json.loads(json.dumps(setup)) != stored:
        differ = sorted(k for k in set(setup) | set(stored or {})
                        if json.loads(json.dumps(setup.get(k))) != (stored or {}).get(k))
        raise UsageError(f"the study in {where} searched with other {', '.join(differ)}"
                         f"{_first_difference(setup, stored)}: continue it with the same config, folds and options, "
                         "or give another --output_dir")


def _first_difference(setup, stored):
    """' (config.learning_rate: 0.001 here, 0.0001 in the study)' for the first differing key of a nested setup."""
    def walk(mine, theirs, path):
        if isinstance(mine, dict) and isinstance(theirs, dict):
            for key in sorted(set(mine) | set(theirs), key=str):
                found = walk(mine.get(key), theirs.get(key), f"{path}.{key}" if path else str(key))
                if found:
                    return found
            return None
        return None if mine == theirs else f" ({path}: {mine!r} here, {theirs!r} in the study)"

    return walk(json.loads(json.dumps(setup)), stored or {}, "") or ""


def recover_killed_trials(study):
    """Mark trials a killed search left RUNNING as FAIL, and queue every interrupted trial's parameters again.

    Only one search runs per output dir (the command holds its lock), so a RUNNING trial at start was killed
    (SIGKILL, a lost machine); a trial stopped by Ctrl-C is already FAIL with user attribute `interrupted`. The
    queued trial keeps the first try's run dir (`run_dir`): a fine-tuning trial's finished folds are kept and an
    interrupted fold resumes from its newest intact checkpoint.

    Returns:
        The numbers of the trials queued again.
    """
    storage, queued = study._storage, []
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}  # queued trials included (state WAITING)
    for trial in trials:
        running = trial.state == optuna.trial.TrialState.RUNNING
        interrupted = trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs.get("interrupted")
        if not (running or interrupted) or trial.number in retried:
            continue
        if running:  # a finished trial takes no more attributes: mark it first
            storage.set_trial_user_attr(trial._trial_id, "killed", True)
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={
            "retry_of": trial.number, "run_dir": trial.user_attrs.get("run_dir", f"trial_{trial.number}"),
            **({"config_defaults": True} if trial.user_attrs.get("config_defaults") else {})})
        queued.append(trial.number)
    if queued:
        logger.warning("Trial(s) %s were interrupted: marked FAIL and queued again with the same parameters", queued)
    return queued


def finished_trials(study):
    """Trials that ran to the end: complete or pruned (what --n_trials counts)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def best_trial(study):
    """The complete trial with the highest mean validation UA, or None."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value)]
    return max(complete, key=lambda t: t.value) if complete else None

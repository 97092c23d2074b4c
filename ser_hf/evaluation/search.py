"""Bayesian hyperparameter search over speaker folds: the search space, the trial configs, the resumable study.

The space is a key of the recipe YAML (`search_space` for fine-tuning trials, `probe_search_space` for `--probe
true` trials), one entry per parameter:

    search_space:
      learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      model_config_overrides.mask_time_prob: {type: float, low: 0.0, high: 0.1}   # a key inside a dict field
      freeze_encoder_layers: {type: int, low: 0, high: 6}
      augmentation: {type: categorical, choices: [none, seed21, light]}

A parameter is a config field (or `FIELD.KEY` inside the dict fields model_config_overrides and
lr_scheduler_kwargs); each trial is an ordinary config (the recipe YAML with the trial's values, written as the
trial's `config.yaml`), so the best trial's is ready to run. The study lives in SQLite (optuna's RDB storage): a rerun
continues it, and a trial a killed process left RUNNING is marked FAIL and its parameters are queued again
(`recover_killed_trials`). The objectives (what a trial runs) are in `ser_hf.evaluation.search_objectives`.
"""

import copy
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from transformers import AutoConfig

from ser_hf.config import (
    SEARCH_KEYS, DataArguments, ModelArguments, SERTrainingArguments, UsageError, config_fields, parse_config,
    read_config,
)

logger = logging.getLogger(__name__)

PARAM_TYPES = ("float", "int", "categorical")
DICT_FIELDS = ("model_config_overrides", "lr_scheduler_kwargs")
# What a probe trial can change: the head's training (the encoder is frozen and its features cached once).
PROBE_FIELDS = ("probe_learning_rate", "probe_batch_size", "probe_epochs", "probe_patience", "weight_decay",
                "class_weighting")
STUDY_NAME = "ser_hf_search"
TRIAL_CONFIG = "config.yaml"


@dataclass(frozen=True)
class Param:
    """One searched parameter: a config field (or FIELD.KEY of a dict field) and its range or choices."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def contains(self, value):
        """Whether `value` (e.g. the config's own) lies in this parameter's range or choices."""
        if self.type == "categorical":
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def bounds(self):
        """The values that test the range: its ends, or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


def _check_entry(name, entry, where):
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: {name} must be a mapping like {{type: float, low: 1.0e-5, high: 1.0e-3}}")
    unknown = set(entry) - {"type", "low", "high", "log", "step", "choices"}
    if unknown:
        raise UsageError(f"{where}: {name} has unknown key(s) {sorted(unknown)}; use type, low, high, log, step, "
                         "choices")
    kind = entry.get("type")
    if kind not in PARAM_TYPES:
        raise UsageError(f"{where}: {name} needs type: {' | '.join(PARAM_TYPES)} (got {kind!r})")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices or len(entry) > 2:
            raise UsageError(f"{where}: {name} (categorical) takes only a non-empty list of choices")
        return Param(name, kind, choices=tuple(choices))
    low, high = entry.get("low"), entry.get("high")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if "choices" in entry or not numbers or not low < high:
        raise UsageError(f"{where}: {name} ({kind}) needs numbers low < high (got low {low!r}, high {high!r}); "
                         "write floats like 1.0e-4 (YAML reads 1e-4 as a string)")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise UsageError(f"{where}: {name} (int) needs whole numbers for low and high")
    if entry.get("log") and low <= 0:
        raise UsageError(f"{where}: {name} has log: true, so low must be above 0")
    if entry.get("log") and entry.get("step"):
        raise UsageError(f"{where}: {name}: choose log or step, not both")
    return Param(name, kind, low=low, high=high, log=bool(entry.get("log")), step=entry.get("step"))


def parse_search_space(space, where, probe=False):
    """Check a `search_space` mapping and return its parameters.

    Args:
        space: the YAML mapping {name: {type, low, high, log, step, choices}}.
        where: the config file and key, for the messages.
        probe: the trials are probes: only the head's training fields (PROBE_FIELDS) can change anything.

    Returns:
        [Param, ...] in the YAML's order.

    Raises:
        UsageError: not a mapping, an unknown field, a malformed entry, or a field a probe trial ignores.
    """
    if not isinstance(space, dict) or not space:
        raise UsageError(f"{where} must map parameter names to {{type, low, high[, log]}} or {{type: categorical, "
                         "choices}} (see recipes/configs/demo.yaml)")
    fields, params = config_fields(), []
    for name, entry in space.items():
        field_name, _, key = str(name).partition(".")
        if field_name not in fields or (key and field_name not in DICT_FIELDS):
            raise UsageError(f"{where}: {name} is not a config field (nor FIELD.KEY of {' or '.join(DICT_FIELDS)})")
        if field_name in ("output_dir", "fold", "test_fold", "n_folds", "fold_seed", "fold_scheme", "probe"):
            raise UsageError(f"{where}: {name} cannot be searched: it defines the folds or the run, not the model")
        if probe and name not in PROBE_FIELDS:
            raise UsageError(f"{where}: a probe trial trains only the head on cached features, so {name} changes "
                             f"nothing; search {', '.join(PROBE_FIELDS)}")
        params.append(_check_entry(name, entry, where))
    return params


def _typed(text):
    """A command-line value as YAML would hold it: 1e-3 -> 0.001, true -> True, a JSON object -> dict."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def config_values(config_path, overrides):
    """The recipe YAML's values with the command line's `--field value` overrides applied (typed as in YAML).

    Args:
        config_path: the recipe YAML.
        overrides: `--field value` / `--field=value` / `--flag` / `--no_flag` arguments (without --fold etc.).

    Returns:
        {field: value} (the search keys included, as in the YAML).
    """
    values = dict(read_config(config_path)) if config_path else {}
    args = list(overrides)
    while args:
        flag = args.pop(0)
        if not flag.startswith("--"):
            raise UsageError(f"unexpected argument {flag!r}: overrides are --field value")
        name, has_value, text = flag[2:].partition("=")
        if not has_value:
            if args and not args[0].startswith("--"):
                text = args.pop(0)
            elif name.startswith("no_"):
                name, text = name[3:], "false"
            else:
                text = "true"
        values[name.replace("-", "_")] = _typed(text)
    return values


def trial_config(base, params, output_dir=None, fold=None):
    """The config of one trial: the base values with the trial's parameters, and without the search keys.

    Args:
        base: `config_values(...)`.
        params: {name: value} of the trial (FIELD.KEY names go into the dict field FIELD).
        output_dir: the config's output_dir (None keeps the base's).
        fold: the config's fold (None keeps the base's): one of the searched folds, so that the config runs as it
            is (`ser-hf train`) even where the base's fold is the search's test fold.

    Returns:
        A {field: value} mapping that `parse_config` reads as any recipe YAML.
    """
    values = {k: copy.deepcopy(v) for k, v in base.items() if k not in SEARCH_KEYS}
    for name, value in params.items():
        field_name, _, key = name.partition(".")
        if key:
            inner = values.get(field_name) or {}
            values[field_name] = {**(json.loads(inner) if isinstance(inner, str) else inner), key: value}
        else:
            values[field_name] = value
    if output_dir is not None:
        values["output_dir"] = str(output_dir)
    if fold is not None:
        values["fold"] = fold
    return values


def write_config(values, path, header=""):
    """Write a config mapping as a recipe YAML (keys in their order), with an optional comment header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(values, sort_keys=False, default_flow_style=None))
    return path


def check_space_values(base, params, scratch):
    """Parse a config at every range end and every choice, so a typo fails before the first trial.

    Raises:
        UsageError: a value the recipe refuses (naming the parameter).
    """
    for param in params:
        for value in param.bounds():
            path = write_config(trial_config(base, {param.name: value}), Path(scratch) / "check.yaml")
            try:
                parse_config(path, single_fold=False)
            except UsageError as err:
                raise UsageError(f"search space: {param.name}={value!r} is refused: {err}") from None
    (Path(scratch) / "check.yaml").unlink(missing_ok=True)


def config_defaults(base, params):
    """The config's own values of the searched parameters that lie in the space (the first, reference trial).

    Args:
        base: `config_values(...)`; a field the config does not set takes the recipe's default.
        params: the space.

    Returns:
        {name: value} for every parameter whose config value is inside its range or choices.
    """
    defaults, recipe = {}, None
    for param in params:
        field_name, _, key = param.name.partition(".")
        if field_name in base:
            value = base[field_name]
        else:
            recipe = recipe or _dataclass_defaults()
            value = recipe.get(field_name)
        if key:
            value = (json.loads(value) if isinstance(value, str) else (value or {})).get(key)
            if value is None and field_name == "model_config_overrides":
                value = _model_config_default(base, recipe or _dataclass_defaults(), key)
        if value is not None and param.contains(value):
            defaults[param.name] = int(value) if param.type == "int" else value
    return defaults


def _model_config_default(base, recipe, key):
    """The encoder config's own value of `key` (e.g. hidden_dropout), without loading weights; None if unknown."""
    name = base.get("model_name_or_path", recipe.get("model_name_or_path"))
    try:
        if name in (None, "null", "none", ""):
            config = AutoConfig.for_model(base.get("model_type") or recipe.get("model_type"))
        else:
            config = AutoConfig.from_pretrained(name, revision=base.get("model_revision", "main"))
    except (OSError, ValueError, KeyError):  # offline without the config cached, or no such model type
        return None
    return getattr(config, key, None)


def _dataclass_defaults():
    values = {}
    for cls in (ModelArguments, DataArguments, SERTrainingArguments):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
    return values


def suggest(trial, params):
    """The trial's value of every parameter (fixed ones, e.g. of a queued or retried trial, come back as queued)."""
    values = {}
    for p in params:
        if p.type == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.type == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return values


# ---- the study: created once, continued by every rerun ----

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


def open_study(storage, setup, seed=0, pruner="median"):
    """Create the study, or load it and check that it searches the same thing.

    Args:
        storage: an optuna storage URL (sqlite:///...).
        setup: what the objective means (mode, folds, test fold, space, base config); a rerun must match.
        seed: the sampler's seed; shifted by the trials already run, so a continued study does not redraw them.
        pruner: see `make_pruner`.

    Returns:
        optuna.Study (direction maximize: mean validation UA).

    Raises:
        UsageError: the stored study searched another space, other folds or another config.
    """
    kept = optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 60}})
    study = optuna.load_study(study_name=STUDY_NAME, storage=kept) if STUDY_NAME in \
        optuna.get_all_study_names(storage=kept) else None
    done = len(study.trials) if study is not None else 0
    sampler = optuna.samplers.TPESampler(seed=seed + done)
    if study is None:
        study = optuna.create_study(study_name=STUDY_NAME, storage=kept, sampler=sampler,
                                    pruner=make_pruner(pruner), direction="maximize")
        study.set_user_attr("setup", setup)
        return study
    stored = study.user_attrs.get("setup")
    if json.loads(json.dumps(setup)) != stored:
        differ = sorted(k for k in set(setup) | set(stored or {})
                        if json.loads(json.dumps(setup.get(k))) != (stored or {}).get(k))
        raise UsageError(f"the study in {storage} searched with other {', '.join(differ)}: continue it with the same "
                         "config, folds and options, or give another --output_dir")
    logger.info("Continuing the study in %s: %d trial(s) so far", storage, done)
    return optuna.load_study(study_name=STUDY_NAME, storage=kept, sampler=sampler, pruner=make_pruner(pruner))


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

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
(`recover_killed_trials`). The objectives (what a trial runs) are in `ser_hf.experiments.search_objectives`.
"""

import copy
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig

from ser_hf.config import (
    SEARCH_KEYS,
    DataArguments,
    ModelArguments,
    SERTrainingArguments,
    config_fields,
    parse_config,
    read_config,
    write_config,
)
from ser_hf.console import override_values
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

PARAM_TYPES = ("float", "int", "categorical")
DICT_FIELDS = ("model_config_overrides", "lr_scheduler_kwargs")
# What a probe trial can change: the head's training (the encoder is frozen and its features cached once).
PROBE_FIELDS = ("probe_learning_rate", "probe_batch_size", "probe_epochs", "probe_patience", "weight_decay",
                "class_weighting")
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


def config_values(config_path, overrides):
    """The recipe YAML's values with the command line's `--field value` overrides applied (typed as in YAML).

    Args:
        config_path: the recipe YAML.
        overrides: `--field value` / `--field=value` / `--flag` / `--no_flag` arguments (without --fold etc.).

    Returns:
        {field: value} (the search keys included, as in the YAML).
    """
    return {**(read_config(config_path) if config_path else {}), **override_values(overrides)}


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





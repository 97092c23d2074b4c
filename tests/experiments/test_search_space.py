"""Tests for ser_hf.experiments.search_space and search_objectives: the search-space schema, trial configs, the resumable
study (killed trials retried in their own dir) and fold-by-fold pruning."""

import json
from pathlib import Path

import optuna
import pytest
import yaml

from ser_hf.config import parse_config, write_config
from ser_hf.errors import UsageError
from ser_hf.experiments.search_objectives import _FoldObjective
from ser_hf.experiments.search_space import (
    check_space_values,
    config_defaults,
    config_values,
    parse_search_space,
    trial_config,
)
from ser_hf.experiments.study import best_trial, finished_trials, open_study, recover_killed_trials
from ser_hf.reporting.search_report import plot_search, search_summary, trial_rows, write_search_report

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes/configs/demo.yaml"
SPACE = {"learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
         "model_config_overrides.mask_time_prob": {"type": "float", "low": 0.0, "high": 0.1},
         "freeze_encoder_layers": {"type": "int", "low": 0, "high": 2},
         "augmentation": {"type": "categorical", "choices": ["none", "light"]}}


def test_the_recipe_configs_with_search_spaces_still_train():
    # The search keys sit in the same YAML as the fields; training must read it as before.
    _, data_args, training_args = parse_config(DEMO)
    assert training_args.output_dir == "outputs/demo" and data_args.fold == 5
    assert parse_search_space(yaml.safe_load(DEMO.read_text())["search_space"], "demo")
    assert parse_search_space(yaml.safe_load(DEMO.read_text())["probe_search_space"], "demo", probe=True)


@pytest.mark.parametrize("space, message", [
    ({"learning_rat": {"type": "float", "low": 0.1, "high": 1.0}}, "not a config field"),
    ({"seed.x": {"type": "int", "low": 0, "high": 1}}, "not a config field"),
    ({"test_fold": {"type": "int", "low": 0, "high": 1}}, "cannot be searched"),
    ({"learning_rate": {"type": "float", "low": "1e-4", "high": 1.0e-2}}, "low < high"),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 1.0e-2, "log": True}}, "low must be above 0"),
    ({"learning_rate": {"type": "uniform", "low": 0.1, "high": 1.0}}, "needs type"),
    ({"augmentation": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"learning_rate": {"type": "float", "low": 0.1, "high": 1.0, "lo": 0}}, "unknown key"),
    ({"freeze_encoder_layers": {"type": "int", "low": 0.5, "high": 2}}, "whole numbers"),
])
def test_a_malformed_search_space_is_refused_naming_the_entry(space, message):
    with pytest.raises(UsageError, match=message):
        parse_search_space(space, "c.yaml: search_space")


def test_a_probe_search_refuses_fields_a_probe_ignores():
    with pytest.raises(UsageError, match="learning_rate changes nothing"):
        parse_search_space({"learning_rate": {"type": "float", "low": 0.1, "high": 1.0}}, "c", probe=True)


def test_a_trial_config_is_the_recipe_with_the_trial_values(tmp_path):
    base = config_values(DEMO, ["--learning_rate", "2e-3", "--no_use_cpu", "--report_to=tensorboard"])
    assert base["learning_rate"] == 0.002 and base["use_cpu"] is False and base["report_to"] == "tensorboard"
    values = trial_config(base, {"model_config_overrides.mask_time_prob": 0.05, "augmentation": "light"},
                          output_dir=tmp_path / "out", fold=0)
    assert "search_space" not in values and "probe_search_space" not in values
    # The key inside the dict field is added, the config's other keys are kept.
    assert values["model_config_overrides"]["mask_time_prob"] == 0.05
    assert values["model_config_overrides"]["hidden_size"] == 128
    model_args, data_args, training_args = parse_config(write_config(values, tmp_path / "trial.yaml", "a\nb"))
    assert model_args.model_config_overrides["mask_time_prob"] == 0.05 and data_args.augmentation == "light"
    assert training_args.learning_rate == 0.002 and data_args.fold == 0
    assert (tmp_path / "trial.yaml").read_text().startswith("# a\n# b\n")


def test_every_value_of_the_space_is_checked_before_the_first_trial(tmp_path):
    base = config_values(DEMO, [])
    check_space_values(base, parse_search_space(SPACE, "s"), tmp_path)
    bad = {"augmentation": {"type": "categorical", "choices": ["none", "heavy"]}}
    with pytest.raises(UsageError, match="augmentation='heavy' is refused"):
        check_space_values(base, parse_search_space(bad, "s"), tmp_path)


def test_the_reference_trial_takes_the_config_s_own_values():
    base = config_values(DEMO, ["--learning_rate", "2e-3"])
    space = {**SPACE, "model_config_overrides.hidden_dropout": {"type": "float", "low": 0.0, "high": 0.2},
             "weight_decay": {"type": "float", "low": 0.01, "high": 0.1}}
    defaults = config_defaults(base, parse_search_space(space, "s"))
    # From the YAML, the command line, the encoder config's default (hidden_dropout 0.1) and the recipe's defaults;
    # weight_decay's 0.0 is outside the range, so the sampler draws it.
    assert defaults == {"learning_rate": 0.002, "model_config_overrides.mask_time_prob": 0.0,
                        "freeze_encoder_layers": 0, "augmentation": "none",
                        "model_config_overrides.hidden_dropout": 0.1}


def _study(tmp_path, setup=None):
    return open_study(f"sqlite:///{tmp_path / 'study.db'}", setup or {"folds": [0, 1]}, seed=0)


class _Scripted(_FoldObjective):
    """Fold scores from a table {learning_rate: [ua per fold]}; records which folds each trial ran."""

    def __init__(self, root, params, folds, table):
        super().__init__(root, {"learning_rate": 1.0}, params, folds)
        self.table, self.calls = table, []

    def score_folds(self, config, folds, run_dir):
        lr = yaml.safe_load(Path(config).read_text())["learning_rate"]
        self.calls.append((run_dir.name, list(folds)))
        return {k: self.table[lr][self.folds.index(k)] for k in folds}


def test_a_trial_is_scored_fold_by_fold_and_pruned_below_the_median(tmp_path):
    params = parse_search_space({"learning_rate": {"type": "categorical", "choices": [1, 2, 3, 4, 5]}}, "s")
    table = {1: [0.5, 0.7, 0.6], 2: [0.6, 0.8, 0.7], 3: [0.7, 0.9, 0.8], 4: [0.2, 0.9, 0.9], 5: [0.65, 0.3, 0.3]}
    study = _study(tmp_path)
    objective = _Scripted(tmp_path, params, [3, 0, 1], table)
    for lr in (1, 2, 3, 4, 5):
        study.enqueue_trial({"learning_rate": lr})
    study.optimize(objective, n_trials=5)
    states = [t.state for t in study.trials]
    # Trials 0-2 start the pruner (running means 0.5/0.6/0.7 after one fold, 0.6/0.7/0.8 after two). Trial 3 is
    # below their median after its first fold; trial 4 is above it after its first (0.65 > 0.6), and its best
    # running mean is below it after its second (0.65 < 0.7): optuna's median pruner compares the trial's best.
    assert states == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.PRUNED] * 2
    assert [folds for _, folds in objective.calls[9:]] == [[3], [3], [0]]
    assert study.trials[2].value == pytest.approx(0.8)
    assert study.trials[4].user_attrs["fold_ua"] == {"3": 0.65, "0": 0.3}
    assert best_trial(study).number == 2 and len(finished_trials(study)) == 5
    rows = trial_rows(study, [3, 0, 1])
    assert rows[3]["ua_fold_3"] == 0.2 and rows[3]["ua_fold_0"] is None and "pruned after 1" in rows[3]["note"]
    summary = search_summary(study, best_trial(study), study.trials[0], [3, 0, 1], None, rows)
    write_search_report(tmp_path, summary, rows)
    assert len((tmp_path / "trials.csv").read_text().splitlines()) == 6
    assert json.loads((tmp_path / "search_results.json").read_text())["best"]["trial"] == 2
    assert {p.name for p in plot_search(study, tmp_path)} == {"optimization_history.png", "param_importances.png"}


def test_a_killed_trial_is_marked_and_retried_in_its_own_dir(tmp_path):
    params = parse_search_space({"learning_rate": {"type": "float", "low": 0.1, "high": 1.0}}, "s")
    study = _study(tmp_path)
    killed = study.ask()  # a trial a killed process left RUNNING, half-way through its folds
    killed.suggest_float("learning_rate", 0.1, 1.0)
    killed.set_user_attr("run_dir", "trial_0")
    again = _study(tmp_path)  # the rerun
    assert recover_killed_trials(again) == [0]
    assert again.trials[0].state == optuna.trial.TrialState.FAIL and again.trials[0].user_attrs["killed"]
    assert recover_killed_trials(again) == []  # queued once
    objective = _Scripted(tmp_path, params, [0, 1], {killed.params["learning_rate"]: [0.4, 0.6]})
    again.optimize(objective, n_trials=1)
    retry = again.trials[1]
    assert retry.params == killed.params and retry.user_attrs["retry_of"] == 0
    assert retry.value == pytest.approx(0.5) and objective.calls == [("trial_0", [0]), ("trial_0", [1])]


def test_a_study_continues_only_the_same_search(tmp_path):
    _study(tmp_path, {"folds": [0, 1], "space": {"a": 1}})
    assert _study(tmp_path, {"folds": [0, 1], "space": {"a": 1}}) is not None
    with pytest.raises(UsageError, match="searched with other folds"):
        _study(tmp_path, {"folds": [0, 2], "space": {"a": 1}})

"""--task dimensional in the recipe's arguments: its fields, what it refuses before any data work, and the
checkpoint selection it moves from UA to CCC."""

import logging
from pathlib import Path

import pytest

from ser_hf.config import parse_config, parse_dimension_range
from ser_hf.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model_name_or_path", "null", "--model_type", "wav2vec2", "--corpus", "manifest", "--manifest", "m.csv"]


def _parse(*argv, config=None):
    return parse_config(config, [*TINY, *argv])


def test_dimensional_fields_and_their_defaults():
    _, data_args, training_args = _parse("--task", "dimensional", "--dimension_range", " 1 , 5.0")
    assert training_args.task == "dimensional" and training_args.dimensional_loss == "ccc"
    assert data_args.dimension_range == "1,5"  # one spelling, whatever was typed
    _, data_args, training_args = _parse("--task", "dimensional", "--dimensional_loss", "mse")
    assert training_args.dimensional_loss == "mse" and data_args.dimension_range is None
    with pytest.raises(UsageError, match="dimensional_loss"):
        _parse("--task", "dimensional", "--dimensional_loss", "mae")


@pytest.mark.parametrize("value, expected", [("1,5", (1.0, 5.0)), ([1, 7], (1.0, 7.0)), ("-1, 1", (-1.0, 1.0))])
def test_dimension_range_takes_the_command_line_and_yaml_forms(value, expected):
    assert parse_dimension_range(value) == expected


@pytest.mark.parametrize("value, message", [("5,1", "LOW must be below HIGH"), ("1-5", "LOW,HIGH"),
                                            ("1,2,3", "LOW,HIGH"), ("a,b", "LOW,HIGH")])
def test_a_bad_dimension_range_is_refused(value, message):
    with pytest.raises(UsageError, match=message):
        _parse("--task", "dimensional", "--dimension_range", value)


@pytest.mark.parametrize("argv, message", [
    (["--probe", "true"], "--probe is for emotion classes; --task dimensional"),
    (["--temperature_scaling", "true"], "--temperature_scaling is for emotion classes"),
    (["--class_weighting", "inverse"], "--class_weighting is for emotion classes"),
    (["--balanced_sampling", "true"], "--balanced_sampling is for emotion classes"),
    (["--plateau_metric", "ua"], "--plateau_metric ua scores classes"),
    (["--unlabeled_dir", "pool"], "a --task dimensional model has no classes: drop --unlabeled_dir"),
    (["--pseudo_pool_fold", "2", "--test_fold", "1"], "drop --unlabeled_dir / --pseudo_pool_fold"),
    (["--init_head_from", "probe_dir"], "drop --init_head_from"),
])
def test_what_only_a_classifier_has_is_refused_at_parse_time(argv, message):
    with pytest.raises(UsageError, match=message):
        _parse("--task", "dimensional", *argv)


def test_dimension_range_without_the_task_and_ccc_for_a_classifier_are_refused():
    with pytest.raises(UsageError, match="--dimension_range scales the ratings of --task dimensional"):
        _parse("--dimension_range", "1,5")
    with pytest.raises(UsageError, match="--plateau_metric ccc scores --task dimensional"):
        _parse("--plateau_metric", "ccc")


def test_a_class_metric_for_the_best_model_becomes_ccc_and_mse_is_minimised(caplog):
    with caplog.at_level(logging.INFO, logger="ser_hf.config"):
        _, _, training_args = _parse("--task", "dimensional", config=ROOT / "recipes/configs/custom_small.yaml")
    assert training_args.metric_for_best_model == "ccc" and training_args.greater_is_better is True
    assert "metric_for_best_model ua -> ccc" in caplog.text
    _, _, training_args = _parse("--task", "dimensional", "--metric_for_best_model", "mse",
                                 "--load_best_model_at_end", "true", "--eval_strategy", "steps",
                                 "--save_strategy", "steps")
    assert training_args.metric_for_best_model == "mse" and training_args.greater_is_better is False
    _, _, training_args = _parse("--task", "emotion", config=ROOT / "recipes/configs/custom_small.yaml")
    assert training_args.metric_for_best_model == "ua"  # an emotion run keeps its metric

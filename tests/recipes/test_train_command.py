"""The train command's own behaviour around the Trainer: what it says and what it leaves behind."""

import logging
from types import SimpleNamespace

import pytest
import transformers
from transformers import EarlyStoppingCallback

from ser_hf.errors import UsageError
from ser_hf.experiments.training_run import _log_early_stop
from tests.conftest import train


def _trainer_after(patience, counter):
    stopper = EarlyStoppingCallback(patience)
    stopper.early_stopping_patience_counter = counter
    return SimpleNamespace(
        callback_handler=SimpleNamespace(callbacks=[stopper]),
        args=SimpleNamespace(metric_for_best_model="ua"),
        state=SimpleNamespace(global_step=12, max_steps=40, best_metric=0.5, best_model_checkpoint="o/checkpoint-4"))


def test_early_stop_is_said_with_its_reason(caplog):
    with caplog.at_level(logging.INFO, logger="ser_hf"):
        _log_early_stop(_trainer_after(patience=2, counter=2))
    assert "Early stopping at step 12 of 40: ua did not improve for 2 evaluations (best 0.5000, checkpoint-4)" \
        in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ser_hf"):
        _log_early_stop(_trainer_after(patience=2, counter=1))  # patience not used up: training ran its course
    assert "Early stopping" not in caplog.text


def test_a_run_that_fails_before_writing_anything_leaves_no_output_dir(tmp_path):
    output_dir = tmp_path / "out"
    with pytest.raises(Exception, match="RAVDESS"):  # no corpus there and no download allowed
        train(["--corpus", "ravdess", "--data_dir", str(tmp_path / "missing"), "--download", "false",
               "--output_dir", str(output_dir), "--model_name_or_path", "null", "--model_type", "wav2vec2"])
    assert not output_dir.exists()
    assert transformers.utils.logging.is_progress_bar_enabled()  # off during the run only


def test_a_mistake_fails_before_the_output_dir_exists(tmp_path):
    with pytest.raises(UsageError, match="--model_name_or_path null"):
        train(["--model_type", "hubert", "--output_dir", str(tmp_path / "out")])  # with the default pretrained name
    assert not (tmp_path / "out").exists()

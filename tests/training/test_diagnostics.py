"""Tests for ser_hf.training.diagnostics: prediction histograms, collapse and stall warnings, resume."""

import json
import logging
from types import SimpleNamespace

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.training.diagnostics import DIAGNOSTICS_FILE, TrainingDiagnostics, collapsed_class, find_diagnostics

LABELS = ["neutral", "happy", "sad", "angry"]


def test_collapse_is_measured_against_the_other_classes():
    references = np.repeat([0, 1, 2, 3], 10)
    assert collapsed_class(references, references, 4) is None  # perfect
    assert collapsed_class(np.full(40, 2), references, 4) == (2, 1.0)  # constant
    mostly_sad = references.copy()
    mostly_sad[np.arange(40) % 10 < 6] = 2  # 60 % of every other class predicted as sad
    assert collapsed_class(mostly_sad, references, 4)[0] == 2
    # Imbalanced evaluation set: predicting the 70 % majority class for its own clips (and a few more) is fine.
    imbalanced = np.array([0] * 70 + [1] * 10 + [2] * 10 + [3] * 10)
    predictions = imbalanced.copy()
    predictions[70:75] = 0
    assert collapsed_class(predictions, imbalanced, 4) is None


def test_collapse_threshold_is_half_of_the_other_classes_clips():
    # 30 clips of classes other than sad (10 each of neutral, happy, angry); the sad clips stay correct.
    references = np.repeat([0, 1, 2, 3], 10)
    others = np.flatnonzero(references != 2)

    def predicted_sad(n):
        predictions = references.copy()
        predictions[others[::2][:n]] = 2  # spread over the three other classes
        return predictions

    assert collapsed_class(predicted_sad(15), references, 4) == (2, 25 / 40)  # exactly half: collapsed
    assert collapsed_class(predicted_sad(14), references, 4) is None  # 14 of 30: not yet


def _evaluate(diagnostics, tmp_path, step, predictions, references, ua):
    args = SimpleNamespace(metric_for_best_model="ua", output_dir=str(tmp_path))
    state = SimpleNamespace(global_step=step, epoch=step / 10, is_world_process_zero=True)
    compute = make_compute_metrics(LABELS, on_predictions=diagnostics.record)
    logits = np.eye(len(LABELS))[predictions]
    compute(SimpleNamespace(predictions=logits, label_ids=references))
    diagnostics.on_evaluate(args, state, None, metrics={"eval_ua": ua})


def test_collapse_warns_once_after_consecutive_evaluations(tmp_path, caplog):
    references = np.repeat([0, 1, 2, 3], 5)
    diagnostics = TrainingDiagnostics(LABELS, collapse_evaluations=2)
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.diagnostics"):
        _evaluate(diagnostics, tmp_path, 10, np.full(20, 1), references, 0.25)
        assert not diagnostics.warnings  # one collapsed evaluation early in training is common
        _evaluate(diagnostics, tmp_path, 20, np.full(20, 1), references, 0.25)
        _evaluate(diagnostics, tmp_path, 30, np.full(20, 1), references, 0.25)
    assert [kind for kind, _ in diagnostics.warnings] == ["collapse"]
    assert len([r for r in caplog.records if "collapsed onto one class" in r.message]) == 1
    message = diagnostics.warnings[0][1]
    assert "'happy' for 100% of the 20 evaluation clips" in message and "--class_weighting" in message
    saved = json.loads((tmp_path / DIAGNOSTICS_FILE).read_text())
    assert saved["evaluations"][0]["predicted"] == {"neutral": 0, "happy": 20, "sad": 0, "angry": 0}
    assert saved["warnings"][0]["kind"] == "collapse"


def test_recovering_model_gets_no_collapse_warning(tmp_path):
    references = np.repeat([0, 1, 2, 3], 5)
    diagnostics = TrainingDiagnostics(LABELS, collapse_evaluations=2)
    _evaluate(diagnostics, tmp_path, 10, np.full(20, 1), references, 0.25)
    _evaluate(diagnostics, tmp_path, 20, references, references, 1.0)
    _evaluate(diagnostics, tmp_path, 30, np.full(20, 1), references, 0.25)
    assert diagnostics.warnings == []


def test_card_keeps_only_warnings_that_still_hold_at_the_end(tmp_path):
    references = np.repeat([0, 1, 2, 3], 5)
    recovered = TrainingDiagnostics(LABELS, collapse_evaluations=2, stall_evaluations=2)
    for step in (10, 20, 30):
        _evaluate(recovered, tmp_path, step, np.full(20, 1), references, 0.25)
    assert len(recovered.persisting_warnings()) == 2 and [k for k, _ in recovered.warnings] == ["collapse", "stall"]
    _evaluate(recovered, tmp_path, 40, references, references, 1.0)
    assert recovered.persisting_warnings() == []  # recovered: the log and diagnostics.json still say it happened
    assert [k for k, _ in recovered.warnings] == ["collapse", "stall"]


def test_stalled_metric_warns_and_a_moving_one_does_not(tmp_path):
    references = np.repeat([0, 1, 2, 3], 5)
    moving = TrainingDiagnostics(LABELS, stall_evaluations=3)
    for step, ua in enumerate([0.25, 0.3, 0.35, 0.4, 0.45], start=1):
        _evaluate(moving, tmp_path, step, references, references, ua)
    assert moving.warnings == []
    stalled = TrainingDiagnostics(LABELS, stall_evaluations=3)
    for step, ua in enumerate([0.3, 0.5, 0.5, 0.5], start=1):
        _evaluate(stalled, tmp_path, step, references, references, ua)
        assert not stalled.warnings  # 0.5 three times is only two evaluations without change
    _evaluate(stalled, tmp_path, 5, references, references, 0.5)
    assert [kind for kind, _ in stalled.warnings] == ["stall"]
    assert "eval_ua has stayed at 0.5000 for 3 evaluations" in stalled.warnings[0][1]


def test_resumed_run_continues_the_history(tmp_path):
    references = np.repeat([0, 1, 2, 3], 5)
    first = TrainingDiagnostics(LABELS, collapse_evaluations=2)
    _evaluate(first, tmp_path, 10, np.full(20, 3), references, 0.25)
    saved = json.loads(json.dumps(first.state()))  # what checkpoint-10's trainer_state.json holds
    _evaluate(first, tmp_path, 20, references, references, 1.0)  # after the checkpoint: lost with the interruption

    # The Trainer's own restore (restore_callback_states_from_checkpoint) replaces our callback with a new
    # instance built from the saved state; find_diagnostics must hand back that one.
    args = TrainingArguments(str(tmp_path), report_to="none", restore_callback_states_from_checkpoint=True)
    trainer = Trainer(model=torch.nn.Linear(1, 1), args=args,
                      callbacks=[TrainingDiagnostics(LABELS, collapse_evaluations=2)])
    trainer.state.stateful_callbacks = {"TrainingDiagnostics": saved}
    trainer._load_callback_state()
    resumed = find_diagnostics(trainer)
    assert [h["step"] for h in resumed.history] == [10] and resumed.collapse_evaluations == 2
    _evaluate(resumed, tmp_path, 20, np.full(20, 3), references, 0.25)
    assert [kind for kind, _ in resumed.warnings] == ["collapse"]  # counts the evaluation before the interruption

"""Training diagnostics: notice the failures SER users report, and say what usually causes them.

"Validation accuracy stays constant", "the model predicts one class" and "the loss plateaus" look like
success in a loss curve read quickly. `TrainingDiagnostics` keeps a prediction histogram at every evaluation
and warns once, in the log and on the model card, when

- the model predicts one class for most of the evaluation set (collapse), for `collapse_evaluations`
  evaluations in a row;
- `metric_for_best_model` has not moved for `stall_evaluations` evaluations in a row.

Non-finite losses and gradient norms stop training in `SERTrainer` (before the weights are touched).
"""

import json
import logging
from pathlib import Path

import numpy as np
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ser_hf.storage import write_text_atomic

logger = logging.getLogger(__name__)

DIAGNOSTICS_FILE = "diagnostics.json"

COLLAPSE_HELP = (
    "Likely causes: a learning rate too high for this model (divide it by 3), too few steps or no warmup, class "
    "imbalance (--class_weighting inverse or --balanced_sampling true), batches that hold one emotion (length-"
    "grouped batches when clip length follows emotion: --train_sampling_strategy random), or zero-padding that a "
    "model without an attention mask learns from (--padding crop). If it persists to the end, the reported UA is "
    "close to chance."
)
STALL_HELP = (
    "Likely causes: the learning rate is too low to move a frozen or pretrained encoder (raise it, or unfreeze "
    "layers), or too high and the model is stuck predicting a fixed set of classes (see the prediction histogram "
    "in diagnostics.json); an evaluation split too small to change by one clip; training data that does not "
    "reach the model (check class_counts.json and data_report.json)."
)


def collapsed_class(predictions, references, num_labels):
    """The class the model has collapsed onto, or None.

    A model has collapsed onto class c when it predicts c for at least half of the clips whose true class is
    not c. Measured against the other classes' clips, the test means the same on balanced and imbalanced
    evaluation sets: predicting the majority class for exactly its own clips is no collapse.

    Args:
        predictions, references: label ids of one evaluation.
        num_labels: size of the label set.

    Returns:
        (class id, share of all clips predicted as it), or None.
    """
    predictions, references = np.asarray(predictions), np.asarray(references)
    counts = np.bincount(predictions, minlength=num_labels)
    top = int(counts.argmax())
    others = references != top
    if others.sum() == 0 or (predictions[others] == top).mean() < 0.5:
        return None
    return top, float(counts[top] / len(predictions))


class TrainingDiagnostics(TrainerCallback, ExportableState):
    """Prediction histograms and collapse / stall warnings at every evaluation.

    `compute_metrics` hands each evaluation's predictions to `record` (see `ser_hf.evaluation.metrics.make_compute_metrics`);
    `on_evaluate` then checks them. Histograms and warnings go to `output_dir/diagnostics.json` (main process).

    The history is checkpointed with the Trainer's state (`ExportableState`), so a resumed run keeps counting a
    collapse or a stall that began before the interruption. The Trainer restores it into a new instance: find
    the live one with `find_diagnostics(trainer)` rather than keeping a reference from before `train()`.

    Args:
        label_names: class names in id order.
        collapse_evaluations: evaluations in a row with a collapsed model before warning.
        stall_evaluations: evaluations in a row without any change of the watched metric before warning.
        stall_tolerance: a change smaller than this counts as no change.
    """

    def __init__(self, label_names, collapse_evaluations=2, stall_evaluations=3, stall_tolerance=1e-4):
        self.label_names = list(label_names)
        self.collapse_evaluations = collapse_evaluations
        self.stall_evaluations = stall_evaluations
        self.stall_tolerance = stall_tolerance
        self.history = []  # one entry per evaluation: step, prediction counts, watched metric, collapse
        self.warnings = []  # (kind, message), each kind once
        self._pending = None

    def record(self, predictions, references):
        """Keep one evaluation's predicted and true label ids until `on_evaluate` sees its metrics."""
        self._pending = (np.asarray(predictions).reshape(-1), np.asarray(references).reshape(-1))

    def _warn(self, kind, message, log=True):
        if kind not in {k for k, _ in self.warnings}:
            self.warnings.append((kind, message))
            if log:  # every DDP process sees the same gathered predictions: one of them says so
                logger.warning(message)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self._pending is None:  # an evaluation without our compute_metrics (e.g. a custom eval loop)
            return control
        predictions, references = self._pending
        self._pending = None
        counts = np.bincount(predictions, minlength=len(self.label_names)).tolist()
        watched = "eval_" + (args.metric_for_best_model or "loss").removeprefix("eval_")
        collapse = collapsed_class(predictions, references, len(self.label_names))
        self.history.append({"step": state.global_step, "epoch": state.epoch,
                             "predicted": dict(zip(self.label_names, counts)),
                             watched: (metrics or {}).get(watched),
                             "collapsed_onto": None if collapse is None else self.label_names[collapse[0]]})
        main = state.is_world_process_zero
        if main:
            logger.info("Predictions at step %d: %s", state.global_step,
                        ", ".join(f"{name} {n}" for name, n in zip(self.label_names, counts)))
        self._check_collapse(state, len(predictions), log=main)
        self._check_stall(watched, log=main)
        if main and args.output_dir:
            self.save(args.output_dir)
        return control

    def _check_collapse(self, state, n, log=True):
        recent = self.history[-self.collapse_evaluations:]
        if len(recent) < self.collapse_evaluations or any(h["collapsed_onto"] is None for h in recent):
            return
        name = recent[-1]["collapsed_onto"]
        share = recent[-1]["predicted"][name] / n
        self._warn("collapse", f"The model predicts '{name}' for {share:.0%} of the {n} evaluation clips at step "
                   f"{state.global_step} ({len(recent)} evaluations in a row): it has collapsed onto one class. "
                   + COLLAPSE_HELP, log)

    def _check_stall(self, watched, log=True):
        values = [h[watched] for h in self.history[-(self.stall_evaluations + 1):]]
        if len(values) <= self.stall_evaluations or any(v is None for v in values):
            return
        if max(values) - min(values) < self.stall_tolerance:
            self._warn("stall", f"{watched} has stayed at {values[-1]:.4f} for {self.stall_evaluations} "
                       "evaluations in a row: training has stalled. " + STALL_HELP, log)

    def persisting_warnings(self, kinds=("collapse", "stall")):
        """The warnings whose condition still held at the last evaluation: what the model card should say.

        A from-scratch model often predicts one class for its first evaluations and then recovers; the log
        warned when it happened, diagnostics.json keeps it, but the finished model's card need not carry it.
        """
        last = self.history[-1] if self.history else {}
        watched = [k for k in last if k.startswith("eval_")]
        still = {"collapse": last.get("collapsed_onto") is not None}
        if watched:
            values = [h.get(watched[0]) for h in self.history[-(self.stall_evaluations + 1):]]
            still["stall"] = (len(values) > self.stall_evaluations and None not in values
                              and max(values) - min(values) < self.stall_tolerance)
        return [message for kind, message in self.warnings if still.get(kind) and kind in kinds]

    def card_notes(self, saved_step, confusion_matrix):
        """What the model card should say about the SAVED model, which with load_best_model_at_end is not the last
        state of training: a collapse is judged on the saved model's own predictions (its confusion matrix on the
        reported split); one that came and went during training is named as a passing state.

        Args:
            saved_step: the training step of the saved model.
            confusion_matrix: the saved model's confusion matrix on the reported split (rows: true classes).

        Returns:
            A list of notes (possibly empty).
        """
        cm = np.asarray(confusion_matrix)
        notes, n = [], int(cm.sum())
        predicted = cm.sum(axis=0)
        top = int(predicted.argmax())
        others = n - int(cm[top].sum())  # clips whose true class is not the top prediction
        if others and (int(predicted[top]) - int(cm[top, top])) / others >= 0.5:
            notes.append(f"The saved model (step {saved_step}) predicts '{self.label_names[top]}' for "
                         f"{predicted[top] / n:.0%} of the {n} evaluation clips: it has collapsed onto one class. "
                         + COLLAPSE_HELP)
        elif "collapse" in {kind for kind, _ in self.warnings}:
            first = next(h for h in self.history if h["collapsed_onto"] is not None)
            notes.append(f"During training the model passed through a collapse: at step {first['step']} it predicted "
                         f"'{first['collapsed_onto']}' for most evaluation clips. That was a passing state: the saved "
                         f"model (step {saved_step}) predicts {int((predicted > 0).sum())} of the "
                         f"{len(self.label_names)} classes (diagnostics.json has every evaluation's histogram).")
        notes += self.persisting_warnings(kinds=("stall",))
        return notes

    def save(self, output_dir):
        """Write the histograms and warnings to `output_dir/diagnostics.json`."""
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        blob = {"labels": self.label_names, "evaluations": self.history,
                "warnings": [{"kind": kind, "message": message} for kind, message in self.warnings]}
        path = Path(output_dir) / DIAGNOSTICS_FILE
        write_text_atomic(path, json.dumps(blob, indent=2))
        return path

    def state(self):
        return {
            "args": {"label_names": self.label_names, "collapse_evaluations": self.collapse_evaluations,
                     "stall_evaluations": self.stall_evaluations, "stall_tolerance": self.stall_tolerance},
            "attributes": {"history": self.history, "warnings": [list(w) for w in self.warnings]},
        }


def find_diagnostics(trainer):
    """The `TrainingDiagnostics` the trainer runs now (after a resume, the instance restored from the checkpoint)."""
    return next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, TrainingDiagnostics))

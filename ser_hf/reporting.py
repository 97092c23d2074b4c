"""After training: final metrics, plots and the model card in the output dir (main process only)."""

import csv
import json
import logging
import os
import shlex
from pathlib import Path

import numpy as np

from ser_hf.data import CORPUS_INFO
from ser_hf.metrics import compute_ser_metrics
from ser_hf.model_card import ModelCardInfo, write_model_card
from ser_hf.plots import (
    plot_confusion_matrix, plot_per_class_recall, plot_prediction_histogram, plot_training_curves,
)

logger = logging.getLogger(__name__)

RESULTS_FILE = "ser_results.json"


SECRET_ARGS = ("--hub_token", "--hub-token")


def _redact(argv):
    """The command line with secret values replaced: it is printed on the model card."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
        elif arg.split("=", 1)[0] in SECRET_ARGS and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
        hide = arg in SECRET_ARGS
    return out


def command_line(script, argv):
    """The command that produced this run: what the user typed through run.sh, and the python call.

    Args:
        script: the recipe's path as the user would type it, e.g. "recipes/finetune.py".
        argv: the arguments the recipe received.
    """
    python_call = " ".join(shlex.quote(arg) for arg in ["python", script, *_redact(argv)])
    wrapper = os.environ.get("SER_HF_COMMAND")
    if wrapper:
        wrapper = " ".join(_redact(wrapper.split(" ")))
    return f"{wrapper}\n# which ran:\n{python_call}" if wrapper else python_call


def predict_probabilities(trainer, dataset, split):
    """Class probabilities (softmax of the logits) and label ids of a split, in dataset order."""
    output = trainer.predict(dataset, metric_key_prefix=split)
    logits = output.predictions - output.predictions.max(axis=-1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True), np.asarray(output.label_ids)


def score_probabilities(probs, label_ids, dataset, label_names):
    """SER metrics and one row per clip from class probabilities (one model's, or an ensemble's average).

    Returns:
        (metrics: UA, WA, macro-F1, per-class recall, confusion matrix, baselines, num_examples;
         rows: path, speaker, true, predicted, confidence per clip, in dataset order)
    """
    predicted = probs.argmax(axis=-1)
    metrics = compute_ser_metrics(predicted, label_ids, label_names)
    metrics["num_examples"] = int(len(predicted))
    # Plain columns only: the transform would decode the audio again.
    meta = dataset.with_format(None).select_columns(["path", "speaker"]).to_list()
    rows = [
        {"path": m["path"], "speaker": m["speaker"], "true": label_names[int(t)], "predicted": label_names[int(p)],
         "confidence": round(float(probs[i, p]), 6)}
        for i, (m, t, p) in enumerate(zip(meta, label_ids, predicted))
    ]
    return metrics, rows


def evaluate_split(trainer, dataset, label_names, split):
    """Predict a split: full SER metrics and one row per clip (see `score_probabilities`)."""
    probs, label_ids = predict_probabilities(trainer, dataset, split)
    return score_probabilities(probs, label_ids, dataset, label_names)


def write_predictions_csv(rows, path, data_dir):
    """Per-clip predictions (path, speaker, true, predicted, confidence) for error analysis.

    Paths are written relative to `data_dir`: the file is pushed with the model, local layouts are not.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "speaker", "true", "predicted", "confidence"])
        writer.writeheader()
        writer.writerows({**row, "path": os.path.relpath(row["path"], data_dir)} for row in rows)
    return Path(path)


def write_reports(output_dir, results, label_names, log_history, card_info, diagnostics=None):
    """Write results json, plots and README.md model card.

    Args:
        output_dir: the run's output folder.
        results: {split: metrics from `evaluate_split`}; "validation" is the one the card reports.
        label_names: names in id order.
        log_history: `trainer.state.log_history`.
        card_info: `ModelCardInfo` without metrics and plots (filled here).
        diagnostics: the run's `TrainingDiagnostics`: its prediction histogram is plotted and the warnings that
            still held at the end go on the card, so a collapsed or stalled run says so where its numbers are read.

    Returns:
        Path of the model card.
    """
    output_dir = Path(output_dir)
    (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    headline = results["validation"]
    plots = [
        plot_training_curves(log_history, output_dir / "training_curves.png"),
        plot_confusion_matrix(headline["confusion_matrix"], label_names, output_dir / "confusion_matrix.png"),
        plot_confusion_matrix(
            headline["confusion_matrix"], label_names, output_dir / "confusion_matrix_normalized.png", normalize=True
        ),
        plot_per_class_recall(dict(zip(label_names, headline["per_class_recall"])), output_dir / "per_class_recall.png"),
    ]
    if diagnostics is not None:
        diagnostics.save(output_dir)
        plots.append(plot_prediction_histogram(diagnostics.history, label_names, output_dir / "prediction_histogram.png"))
        card_info.notes += [f"Training diagnostics: {message}" for message in diagnostics.persisting_warnings()]
    card_info.metrics = headline
    card_info.plots = [Path(p).name for p in plots]
    return write_model_card(output_dir, card_info)


def card_info(model_args, data_args, training_args, label_names, split_name, split_protocol, num_train, num_eval,
              command, data_markdown):
    """Everything the model card needs except the metrics and plots (filled by `write_reports`)."""
    corpus = CORPUS_INFO[data_args.corpus]
    scheduler = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    hyperparameters = {
        "model": model_args.model_name_or_path or f"{model_args.model_type} (random init)",
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": scheduler,
        "warmup_steps": training_args.warmup_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "seed": training_args.seed,
        "max_duration_seconds": data_args.max_duration_seconds,
        "padding": data_args.padding,
        "freeze_feature_encoder": model_args.freeze_feature_encoder,
        "freeze_encoder_layers": model_args.freeze_encoder_layers,
        "freeze_encoder": model_args.freeze_encoder,
        "use_weighted_layer_sum": model_args.use_weighted_layer_sum,
        "metric_for_best_model": training_args.metric_for_best_model,
    }
    return ModelCardInfo(
        model_id=training_args.hub_model_id or Path(training_args.output_dir).name,
        base_model=model_args.model_name_or_path,
        dataset_name=corpus["name"],
        dataset_id=corpus["dataset_id"],
        dataset_license=corpus["license"],
        label_names=label_names,
        metrics={},
        split_name=split_name,
        split_description=split_protocol,
        command=command,
        hyperparameters=hyperparameters,
        num_train_examples=num_train,
        num_eval_examples=num_eval,
        data_report=data_markdown,
    )


def results_table(results, output_dir):
    """A short plain-text table for the end of a run."""
    lines = [f"{'split':<12}{'UA':>8}{'WA':>8}{'macro-F1':>10}{'clips':>7}"]
    for split, m in results.items():
        lines.append(f"{split:<12}{m['ua']:>8.3f}{m['wa']:>8.3f}{m['macro_f1']:>10.3f}{m['num_examples']:>7}")
    headline = results.get("validation") or next(iter(results.values()))
    lines.append(f"majority-class WA {headline['majority_baseline_wa']:.3f}, chance UA {headline['chance_ua']:.3f}")
    lines.append(f"model: {output_dir}")
    return "\n".join(lines)


__all__ = ["ModelCardInfo", "card_info", "RESULTS_FILE", "command_line", "evaluate_split", "results_table", "write_predictions_csv",
           "write_reports"]

"""After training: the results file, per-clip predictions CSV, plots and the model card (main process only)."""

import csv
import json
from pathlib import Path

from ser_hf.corpora import get_corpus
from ser_hf.corpora.files import corpus_relative
from ser_hf.evaluation.error_analysis import error_analysis
from ser_hf.evaluation.metrics import RESULTS_FILE
from ser_hf.reporting.calibration_report import calibration_section
from ser_hf.reporting.model_card import ModelCardInfo, write_model_card
from ser_hf.reporting.plots import (
    plot_confusion_matrix,
    plot_per_class_recall,
    plot_prediction_histogram,
    plot_reliability_diagram,
    plot_training_curves,
)
from ser_hf.storage import atomic_write, write_text_atomic


def write_predictions_csv(rows, path, data_dir):
    """Per-clip predictions (path, speaker, true, predicted, confidence) for error analysis.

    Paths are written relative to `data_dir`: the file is pushed with the model, local layouts are not.
    """
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "speaker", "true", "predicted", "confidence"])
        writer.writeheader()
        writer.writerows({**row, "path": corpus_relative(row["path"], data_dir)} for row in rows)
    return Path(path)


def write_split_outputs(rows, label_names, split, output_dir, data_dir):
    """predictions_<split>.csv and error_analysis_<split>.json of one evaluated split.

    Returns:
        The error analysis as text for the log.
    """
    write_predictions_csv(rows, Path(output_dir) / f"predictions_{split}.csv", data_dir)
    _, analysis = write_error_analysis(rows, label_names, Path(output_dir) / f"error_analysis_{split}.json", data_dir)
    return format_error_analysis(analysis, split)


def headline_split(results):
    """The split a run's card reports: the test split when there is one (it took no part in model selection)."""
    return "test" if "test" in results else "validation"


def write_reports(output_dir, results, label_names, log_history, card_info, diagnostics=None, saved_step=None):
    """Write results json, plots and README.md model card.

    Args:
        output_dir: the run's output folder.
        results: {split: metrics from `evaluate_split`}; the card reports `headline_split(results)`.
        label_names: names in id order.
        log_history: `trainer.state.log_history`.
        card_info: `ModelCardInfo` without metrics and plots (filled here).
        diagnostics: the run's `TrainingDiagnostics`: its prediction histogram is plotted, and what it saw goes on
            the card as far as it concerns the saved model (`card_notes`), so a collapsed or stalled run says so
            where its numbers are read and a passing collapse is not mistaken for the saved model's state.
        saved_step: the training step of the saved model (the best checkpoint's with load_best_model_at_end).

    Returns:
        Path of the model card.
    """
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / RESULTS_FILE, json.dumps(results, indent=2))
    headline = results[headline_split(results)]
    plots = [
        plot_training_curves(log_history, output_dir / "training_curves.png", kept_step=saved_step),
        plot_confusion_matrix(headline["confusion_matrix"], label_names, output_dir / "confusion_matrix.png"),
        plot_confusion_matrix(
            headline["confusion_matrix"], label_names, output_dir / "confusion_matrix_normalized.png", normalize=True
        ),
        plot_per_class_recall(dict(zip(label_names, headline["per_class_recall"])), output_dir / "per_class_recall.png"),
    ]
    if "calibration" in headline:  # pipeline scores against the accuracy they deliver
        plots.append(plot_reliability_diagram(headline["calibration"]["bins"], output_dir / "reliability_diagram.png",
                                              ece=headline["ece"]))
        card_info.sections.append(calibration_section(results, headline_split(results), card_info.split_name))
    if diagnostics is not None:
        diagnostics.save(output_dir)
        plots.append(plot_prediction_histogram(diagnostics.history, label_names, output_dir / "prediction_histogram.png"))
        notes = diagnostics.card_notes(saved_step, headline["confusion_matrix"])
        card_info.notes += [f"Training diagnostics: {message}" for message in notes]
    card_info.metrics = headline
    card_info.plots = [Path(p).name for p in plots]
    return write_model_card(output_dir, card_info)


def _selection(training_args, prepared, headline):
    """What chose the reported checkpoint, and whether the reported split took part in that choice."""
    metric, validation = training_args.metric_for_best_model, prepared.split_names["validation"]
    selected = bool(training_args.load_best_model_at_end or training_args.early_stopping_patience)
    text = (f"The checkpoint is the one with the best {metric} on {validation}" if training_args.load_best_model_at_end
            else "The checkpoint is the last one of training")
    if training_args.early_stopping_patience:
        text += f"; early stopping watched {metric} on {validation}"
    if headline == "test":
        return text + f". The scores above are on {prepared.split_names['test']}, which took no part in training or selection."
    if selected:
        return text + (". The scores above are on that same split, so they are optimistic; a fold held out with "
                       "--test_fold takes no part in the choice and gives an unbiased number.")
    return text + "."


def card_info(model_args, data_args, training_args, prepared, num_train, num_eval, command, data_markdown,
              headline="validation"):
    """Everything the model card needs except the metrics and plots (filled by `write_reports`).

    `headline` is the split the card reports (see `headline_split`); `num_eval` its clip count.
    """
    corpus = get_corpus(data_args.corpus)
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
    if getattr(model_args, "init_head_from", None):  # LP-FT: the head started from this probe's
        hyperparameters["init_head_from"] = model_args.init_head_from
    return ModelCardInfo(
        model_id=training_args.hub_model_id or Path(training_args.output_dir).name,
        base_model=model_args.model_name_or_path,
        dataset_name=corpus.display_name,
        dataset_id=None,
        dataset_license=corpus.license,
        label_names=prepared.label_names,
        metrics={},
        split_name=prepared.split_names[headline],
        selection=_selection(training_args, prepared, headline),
        split_description=prepared.protocol,
        speaker_independent=prepared.speaker_independent,
        command=command,
        hyperparameters=hyperparameters,
        num_train_examples=num_train,
        num_eval_examples=num_eval,
        data_report=data_markdown,
        load_from=training_args.hub_model_id or training_args.output_dir,
        corpus_limitations=corpus.limitations,
    )


def results_table(results, output_dir):
    """A short plain-text table for the end of a run."""
    lines = [f"{'split':<12}{'UA':>8}{'WA':>8}{'macro-F1':>10}{'clips':>7}"]
    for split, m in results.items():
        lines.append(f"{split:<12}{m['ua']:>8.3f}{m['wa']:>8.3f}{m['macro_f1']:>10.3f}{m['num_examples']:>7}")
    headline = results[headline_split(results)]
    lines.append(f"majority-class WA {headline['majority_baseline_wa']:.3f}, chance UA {headline['chance_ua']:.3f}")
    if headline.get("ece") is not None:
        lines.append(f"ECE {headline['ece']:.3f} (top score against accuracy, 0 = calibrated)")
    lines.append(f"model: {output_dir}")
    return "\n".join(lines)


def format_error_analysis(analysis, split):
    """A few lines for the end of a run: the most confused pairs and the weakest speaker."""
    lines = [f"Most confused pairs ({split}, true -> predicted):"]
    for pair in analysis["most_confused_pairs"][:5]:
        lines.append(f"  {pair['true']:>12} -> {pair['predicted']:<12} {pair['count']:>4} clips "
                     f"({pair['share_of_true']:.0%} of {pair['true']})")
    if not analysis["most_confused_pairs"]:
        lines.append("  none: every clip is right")
    speakers = analysis["per_speaker"]
    if len(speakers) > 1:
        worst = min(speakers, key=lambda s: speakers[s]["ua"])
        lines.append(f"Weakest speaker: {worst} (UA {speakers[worst]['ua']:.3f} on {speakers[worst]['clips']} clips)")
    return "\n".join(lines)


def write_error_analysis(rows, label_names, path, data_dir=None, top=10):
    """Write `error_analysis` of rows to a JSON file (paths relative to data_dir: it is pushed with the model).

    Returns:
        (path written, the analysis dict)
    """
    analysis = error_analysis(rows, label_names, top)
    if data_dir is not None:
        analysis["confidently_wrong"] = [{**row, "path": corpus_relative(row["path"], data_dir)}
                                         for row in analysis["confidently_wrong"]]
    write_text_atomic(Path(path), json.dumps(analysis, indent=2))
    return Path(path), analysis


def showcase_clip(output_dir, split="validation"):
    """A held-out clip to show a new user the pipeline on: one the model gets right (its surest), with its label.

    Args:
        output_dir: a finished training run (predictions_<split>.csv and data_args.json).
        split: the held-out split to pick from.

    Returns:
        (absolute path, true label, whether the model gets it right, clips right, clips in the split); a clip the
        model gets wrong only when it gets none right.
    """
    output_dir = Path(output_dir)
    with open(output_dir / f"predictions_{split}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    right = [row for row in rows if row["true"] == row["predicted"]]
    row = max(right, key=lambda r: float(r["confidence"])) if right else rows[0]
    data_dir = json.loads((output_dir / "data_args.json").read_text())["data_dir"]
    return str(Path(data_dir) / row["path"]), row["true"], bool(right), len(right), len(rows)

"""What a `--task dimensional` run writes for people: per-clip predictions, the results table, scatter plots and
the model card (ser_results.json keeps `ser_hf.evaluation.dimensional`'s scores).

    write_dimensional_predictions_csv(rows, output_dir / "predictions_validation.csv", data_dir, DIMENSIONS)
    write_dimensional_reports(output_dir, results, predictions, log_history, card_info, saved_step)
"""

import csv
import json
from pathlib import Path

import numpy as np

from ser_hf.corpora import get_corpus
from ser_hf.corpora.files import corpus_relative
from ser_hf.data.dimensions import dimension_range
from ser_hf.evaluation.metrics import RESULTS_FILE
from ser_hf.reporting.model_card import write_model_card
from ser_hf.reporting.plots import plot_dimension_scatter, plot_training_curves
from ser_hf.storage import atomic_write, write_text_atomic


def prediction_columns(names):
    """The predictions CSV's columns: path, speaker, true_<name> for each dimension, then pred_<name>."""
    return ["path", "speaker", *(f"true_{name}" for name in names), *(f"pred_{name}" for name in names)]


def write_dimensional_predictions_csv(rows, path, data_dir, names):
    """Per-clip true and predicted values (`ser_hf.evaluation.held_out.score_values`' rows), paths relative to
    `data_dir` (the file is pushed with the model; local layouts are not)."""
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=prediction_columns(names))
        writer.writeheader()
        writer.writerows({**row, "path": corpus_relative(row["path"], data_dir)} for row in rows)
    return Path(path)


def read_dimensional_predictions(path, names):
    """A predictions CSV back as (rows as read, true values, predicted values): two (clips, dimensions) arrays."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    true, predicted = (np.array([[float(row[f"{prefix}_{name}"]) for name in names] for row in rows],
                                dtype=float).reshape(-1, len(names)) for prefix in ("true", "pred"))
    return rows, true, predicted


def dimension_scaling(data_args):
    """The card's sentence on how the ratings became the 0-1 targets, from the corpus's scale."""
    low, high = dimension_range(data_args)
    spec = get_corpus(data_args.corpus)
    if (low, high) == (0.0, 1.0):
        return "Targets: the corpus's arousal, dominance and valence ratings, already on a 0-1 scale, used as they are."
    whose = f"{spec.display_name}'s" if spec.dimension_range is not None else "the manifest's (--dimension_range)"
    return (f"Targets: {whose} arousal, dominance and valence ratings on a {low:g}-{high:g} scale, each scaled to "
            f"0-1 as (rating - {low:g}) / {high - low:g}; multiply an output by {high - low:g} and add {low:g} to read "
            "it on the corpus's scale.")


def dimensional_results_table(results, output_dir):
    """A short plain-text table for the end of a run: CCC per dimension and mean, MSE beside the training mean's."""
    names = next(iter(results.values()))["dimensions"]
    lines = [f"{'split':<12}" + "".join(f"{'CCC ' + name[:3]:>10}" for name in names)
             + f"{'CCC':>8}{'MSE':>8}{'clips':>7}"]
    for split, m in results.items():
        lines.append(f"{split:<12}" + "".join(f"{m[f'ccc_{name}']:>10.3f}" for name in names)
                     + f"{m['ccc']:>8.3f}{m['mse']:>8.4f}{m['num_examples']:>7}")
    headline = results["test"] if "test" in results else results["validation"]
    if "baseline_mse" in headline:
        lines.append(f"training-mean baseline: CCC 0.000, MSE {headline['baseline_mse']:.4f}")
    lines.append(f"model: {output_dir}")
    return "\n".join(lines)


def write_dimensional_reports(output_dir, results, predictions, log_history, card_info, saved_step=None):
    """ser_results.json, the training curves, a scatter plot per evaluated split and the README.md model card.

    Args:
        output_dir: the run's output folder.
        results: {split: `compute_dimensional_metrics`}; the card reports the test split when there is one.
        predictions: {split: per-clip rows (`score_values`)}, for the scatter plots.
        log_history: `trainer.state.log_history`.
        card_info: `ModelCardInfo` (task "dimensional") without metrics and plots, filled here.
        saved_step: the training step of the saved model.

    Returns:
        Path of the model card.
    """
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / RESULTS_FILE, json.dumps(results, indent=2))
    headline = "test" if "test" in results else "validation"
    names = results[headline]["dimensions"]
    curves = ("eval_ccc", *(f"eval_ccc_{name}" for name in names))
    plots = [plot_training_curves(log_history, output_dir / "training_curves.png", metric_names=curves,
                                  kept_step=saved_step)]
    for split in [headline, *(s for s in predictions if s != headline)]:
        rows = predictions[split]
        true = np.array([[row[f"true_{name}"] for name in names] for row in rows], dtype=float)
        predicted = np.array([[row[f"pred_{name}"] for name in names] for row in rows], dtype=float)
        plots.append(plot_dimension_scatter(true, predicted, names, output_dir / f"dimensions_scatter_{split}.png",
                                            title=f"Predicted against true ({split}, {len(rows)} clips)"))
    card_info.metrics = results[headline]
    card_info.plots = [Path(p).name for p in plots]
    return write_model_card(output_dir, card_info)

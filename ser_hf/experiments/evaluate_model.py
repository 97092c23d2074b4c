"""Evaluate a trained SER model again on its held-out speakers: metrics, per-file predictions and error analysis
(what `ser-hf evaluate` = recipes/evaluate_model.py runs).

    data_args = saved_run_data_args(model_dir, config, overrides)
    results = evaluate_model(model_dir, data_args, split="all")

The data (corpus, data_dir, folds, ...) is the run's own, from MODEL/data_args.json (written by every training
run); a config and `--field value` overrides change it; speakers the model was trained on are refused unless
allowed (then every output says so). Writes to OUTPUT_DIR (default MODEL/evaluation): ser_results.json,
predictions_<split>.csv, error_analysis_<split>.json, the confusion matrices and reliability_diagram_<split>.png.
A `--task multitask` model's intensity head is scored too, and an emotion x intensity model (CREMA-D --labels 21,
RAVDESS --labels 15) is also scored on its labels' emotions. A `--task dimensional` model (config.json's problem_type
regression) is scored by CCC per dimension, with predictions_<split>.csv of true and predicted values and
dimensions_scatter_<split>.png instead of the confusion matrices.
"""

import json
import logging
import tempfile
from pathlib import Path

from transformers import AutoConfig

from ser_hf.config import parse_data_config
from ser_hf.corpora import get_corpus
from ser_hf.data.dimensions import check_dimensional_data, target_mean
from ser_hf.data.prepare import DATA_ARGS_FILE, prepare_corpus, prepare_splits, resolve_data_args
from ser_hf.errors import UsageError
from ser_hf.evaluation.emotion_collapse import add_collapsed_scores
from ser_hf.evaluation.held_out import evaluate_dimensional_split, evaluate_split, load_trained
from ser_hf.evaluation.intensity import evaluate_intensity
from ser_hf.evaluation.metrics import RESULTS_FILE
from ser_hf.models.encoders import is_regression
from ser_hf.models.intensity_head import has_intensity_head, load_intensity_head
from ser_hf.reporting.dimensional_report import (
    dimensional_results_table,
    read_dimensional_predictions,
    write_dimensional_predictions_csv,
)
from ser_hf.reporting.intensity_report import collapsed_emotions_summary_lines, intensity_summary_lines
from ser_hf.reporting.plots import plot_confusion_matrix, plot_dimension_scatter, plot_reliability_diagram
from ser_hf.reporting.results import results_table, write_split_outputs
from ser_hf.storage import write_text_atomic
from ser_hf.training.multitask import with_intensity_ids

logger = logging.getLogger("ser_hf")


def _saved_data_args(model_dir):
    """The DataArguments a run recorded in its data_args.json, or None."""
    saved = Path(model_dir) / DATA_ARGS_FILE
    if not saved.is_file():
        return None
    values = json.loads(saved.read_text())
    # Runs before the corpus registry recorded CREMA-D's `labels: 21` whatever the corpus.
    label_sets = get_corpus(values.get("corpus", "ravdess")).label_sets
    if label_sets is None or str(values.get("labels")) not in label_sets:
        values["labels"] = None
    return values


def saved_run_data_args(model_dir, config=None, overrides=()):
    """The run's DataArguments (its data_args.json), then the config's data fields, then the command line.

    Raises:
        UsageError: the folder has no data_args.json and no config says what to evaluate on.
    """
    defaults = _saved_data_args(model_dir)
    if defaults is None and config is None:
        raise UsageError(f"{Path(model_dir) / DATA_ARGS_FILE} not found (a model trained elsewhere?): pass --config "
                         "with its corpus and folds")
    return resolve_data_args(parse_data_config(config, overrides, defaults))


def _seen_speakers(model_dir, eval_splits, allowed, task="emotion"):
    """The evaluated speakers that the model was trained on, from its own data_args.json.

    Raises:
        UsageError: some evaluated speaker was in the model's training split and `allowed` is False.
    """
    saved = _saved_data_args(model_dir)
    if saved is None:
        logger.warning("%s not found: cannot check that the evaluated speakers were unseen in training",
                       Path(model_dir) / DATA_ARGS_FILE)
        return []
    own = prepare_splits(parse_data_config(None, [], saved), task=task)
    trained_on = {row.get("speaker") for row in own.splits["train"]}
    if None in trained_on or "" in trained_on:
        logger.warning("The model's corpus does not name every speaker: cannot check that the evaluated ones were "
                       "unseen in training")
        return []
    logger.info("The model was trained on %d speakers (its %s): %s", len(trained_on), DATA_ARGS_FILE,
                ", ".join(sorted(map(str, trained_on))))
    seen = sorted({str(row["speaker"]) for rows in eval_splits.values() for row in rows} & set(map(str, trained_on)))
    if seen and not allowed:
        raise UsageError(f"{len(seen)} of the evaluated speakers were in the model's training split ({', '.join(seen)}): "
                         "its scores would measure speaker recognition too. Evaluate on the model's held-out fold "
                         "(drop --fold), or pass --allow_seen_speakers to do it anyway, labelled as such")
    if seen:
        logger.warning("Evaluating on %d speaker(s) the model was trained on: these scores are NOT "
                       "speaker-independent", len(seen))
    return seen


def evaluate_model(model_dir, data_args, split="all", output_dir=None, batch_size=16, allow_seen_speakers=False):
    """Evaluate a saved model on the held-out split(s) of `data_args`; write and return {split: metrics}.

    Args:
        model_dir: a training run's output dir.
        data_args: `saved_run_data_args(...)`.
        split: "validation", "test" or "all" (validation and, if the run had one, test).
        output_dir: where the results go (default MODEL/evaluation).
        batch_size: evaluation batch size.
        allow_seen_speakers: evaluate on speakers the model was trained on (refused otherwise).

    Raises:
        UsageError: no such split, or speakers the model heard in training (without `allow_seen_speakers`).
    """
    model_dir = Path(model_dir)
    output_dir = Path(output_dir or model_dir / "evaluation")
    # A --task dimensional model (config.json: problem_type regression) is scored on its ratings, by CCC.
    task = "dimensional" if is_regression(AutoConfig.from_pretrained(model_dir)) else "emotion"
    if task == "dimensional":
        check_dimensional_data(data_args)
    split_made = prepare_splits(data_args, task=task)
    split_name = split_made.split_name
    wanted = [s for s in split_made.splits if s != "train" and split in ("all", s)]
    if not wanted:
        held_out = [s for s in split_made.splits if s != "train"]
        raise UsageError(f"the data has no {split} split (held out: {held_out})")
    # Refused before the audio scan and decoding: a mistake costs a second, not a pass over the corpus.
    seen = _seen_speakers(model_dir, {s: split_made.splits[s] for s in wanted}, allow_seen_speakers, task)
    prepared = prepare_corpus(data_args, output_dir, prepared=split_made, keep=wanted, task=task)
    if seen:
        split_name += f" -- NOT speaker-independent: {len(seen)} speaker(s) heard in training ({', '.join(seen)})"

    with tempfile.TemporaryDirectory() as scratch:
        trainer, feature_extractor, label_names = load_trained(model_dir, scratch, batch_size)
        label2id = trainer.model.config.label2id
        data = prepared.datasets(label2id, feature_extractor, data_args)
        results, predictions = {}, {}
        if task == "dimensional":
            results = _evaluate_dimensional(trainer, data, wanted, label_names, target_mean(split_made.splits["train"]),
                                            output_dir, data_args)
        for name in (wanted if task == "emotion" else []):
            results[name], rows = evaluate_split(trainer, data[name], label_names, name)
            predictions[name] = rows
            analysis = write_split_outputs(rows, label_names, name, output_dir, data_args.data_dir)
            for normalize, plot in ((False, "confusion_matrix"), (True, "confusion_matrix_normalized")):
                plot_confusion_matrix(results[name]["confusion_matrix"], label_names,
                                      output_dir / f"{plot}_{name}.png", normalize=normalize)
            plot_reliability_diagram(results[name]["calibration"]["bins"], output_dir / f"reliability_diagram_{name}.png",
                                     ece=results[name]["ece"])
            print(analysis)
        if has_intensity_head(model_dir):  # --task multitask: the saved head on the same inputs, as in training
            head = load_intensity_head(model_dir)
            marked = prepared.datasets(label2id, feature_extractor, data_args,
                                       with_intensity_ids(prepared.splits, head.names))
            for name, metrics in evaluate_intensity(trainer, head, marked).items():
                results[name]["intensity"] = metrics
    if task == "emotion":
        add_collapsed_scores(results, predictions, data_args.corpus, data_args.labels)  # emotion x intensity labels
    if seen:
        for metrics in results.values():
            metrics["seen_speakers"] = seen  # in every output, not only the log
    write_text_atomic(output_dir / RESULTS_FILE, json.dumps(results, indent=2))
    table = (dimensional_results_table if task == "dimensional" else results_table)(results, model_dir)
    print("\n".join([split_name, table, *intensity_summary_lines(results), *collapsed_emotions_summary_lines(results)]))
    print(f"wrote {output_dir}")
    return results




def _evaluate_dimensional(trainer, data, wanted, names, train_mean, output_dir, data_args):
    """A regression model's held-out splits: CCC beside the training mean's MSE, per-clip values, scatter plots.

    Returns:
        {split: `compute_dimensional_metrics`}
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in wanted:
        results[name], rows = evaluate_dimensional_split(trainer, data[name], names, name, train_mean)
        path = write_dimensional_predictions_csv(rows, output_dir / f"predictions_{name}.csv", data_args.data_dir,
                                                 names)
        _, true, predicted = read_dimensional_predictions(path, names)
        plot_dimension_scatter(true, predicted, names, output_dir / f"dimensions_scatter_{name}.png",
                               title=f"Predicted against true ({name}, {len(rows)} clips)")
    return results

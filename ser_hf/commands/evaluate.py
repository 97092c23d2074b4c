"""Evaluate a trained SER model on its held-out speakers: metrics, per-file predictions and error analysis.

Usage:
    python recipes/evaluate_model.py --model outputs/demo [--split validation|test|all] [--output_dir DIR]
    python recipes/evaluate_model.py --model outputs/cremad --data_dir /other/copy/of/CREMA-D [--field value ...]

The data (corpus, data_dir, folds, ...) is the run's own, from MODEL/data_args.json (written by finetune.py);
--config and any DataArguments field on the command line change it; speakers the model was trained on are refused
unless --allow_seen_speakers (then every output says so). Writes to OUTPUT_DIR (default
MODEL/evaluation): ser_results.json, predictions_<split>.csv (path, speaker, true, predicted, confidence),
error_analysis_<split>.json (most confused pairs, UA per speaker, the most confidently wrong files), the
confusion matrices and reliability_diagram_<split>.png (its ECE is in ser_results.json); prints the scores and the
most confused pairs. A `--task multitask` model's intensity head is scored too, and an emotion x intensity model
(CREMA-D --labels 21, RAVDESS --labels 15) is also scored on its labels' emotions.
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from ser_hf.commands import one_line_errors
from ser_hf.config import UsageError, parse_data_config
from ser_hf.corpora import get_corpus
from ser_hf.data.prepare import DATA_ARGS_FILE, audio_loader, build_datasets, exclude_bad_audio, prepare_splits, resolve_data_args
from ser_hf.evaluation.emotion_collapse import add_collapsed_scores
from ser_hf.evaluation.intensity import evaluate_intensity
from ser_hf.evaluation.prediction import RESULTS_FILE, evaluate_split, load_trained
from ser_hf.reporting.intensity_report import collapsed_emotions_summary_lines, intensity_summary_lines
from ser_hf.reporting.plots import plot_confusion_matrix, plot_reliability_diagram
from ser_hf.reporting.results import results_table, write_split_outputs
from ser_hf.training.multitask import has_intensity_head, load_intensity_head, with_intensity_ids

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


def _data_args(model_dir, config, overrides):
    """The run's DataArguments, then the config's data fields, then the command line."""
    defaults = _saved_data_args(model_dir)
    if defaults is None and config is None:
        raise UsageError(f"{Path(model_dir) / DATA_ARGS_FILE} not found (a model trained elsewhere?): pass --config "
                         "with its corpus and folds")
    return resolve_data_args(parse_data_config(config, overrides, defaults))


def _seen_speakers(model_dir, eval_splits, allowed):
    """The evaluated speakers that the model was trained on, from its own data_args.json.

    Raises:
        UsageError: some evaluated speaker was in the model's training split and `allowed` is False.
    """
    saved = _saved_data_args(model_dir)
    if saved is None:
        logger.warning("%s not found: cannot check that the evaluated speakers were unseen in training",
                       Path(model_dir) / DATA_ARGS_FILE)
        return []
    own = prepare_splits(parse_data_config(None, [], saved))
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


@one_line_errors
def main(argv=None, prog=None):
    evaluate(argv, prog)
    return 0


def evaluate(argv=None, prog=None):
    """Parse the arguments, evaluate the model on its held-out split(s), write and return {split: metrics}."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Any other --field value sets a DataArguments field (--data_dir, --fold, ...).")
    parser.add_argument("--model", required=True, help="a finetune.py output dir (safetensors weights)")
    parser.add_argument("--config", help="recipe YAML whose data fields replace the run's own")
    parser.add_argument("--split", choices=("validation", "test", "all"), default="all",
                        help="which held-out split(s) to evaluate (all: validation and, if the run had one, test)")
    parser.add_argument("--output_dir", help="where the results go (default: MODEL/evaluation)")
    parser.add_argument("--batch_size", type=int, default=16, help="evaluation batch size")
    parser.add_argument("--allow_seen_speakers", action="store_true",
                        help="evaluate on speakers the model was trained on (refused otherwise); every output then "
                        "says so, since such scores measure speaker recognition as much as emotion")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_dir = Path(args.model)
    output_dir = Path(args.output_dir or model_dir / "evaluation")

    data_args = _data_args(model_dir, args.config, overrides)
    prepared = prepare_splits(data_args)
    split_name = prepared.split_name
    wanted = [s for s in prepared.splits if s != "train" and args.split in ("all", s)]
    if not wanted:
        held_out = [s for s in prepared.splits if s != "train"]
        raise UsageError(f"the data has no {args.split} split (held out: {held_out})")
    seen = _seen_speakers(model_dir, {s: prepared.splits[s] for s in wanted}, args.allow_seen_speakers)
    splits, _ = exclude_bad_audio(prepared.splits, data_args, output_dir)
    if seen:
        split_name += f" -- NOT speaker-independent: {len(seen)} speaker(s) heard in training ({', '.join(seen)})"

    with tempfile.TemporaryDirectory() as scratch:
        trainer, feature_extractor, label_names = load_trained(model_dir, scratch, args.batch_size)
        wanted_splits = {s: splits[s] for s in wanted}
        data = build_datasets(wanted_splits, trainer.model.config.label2id, feature_extractor, data_args,
                              audio_loader(wanted_splits, data_args, output_dir))
        results, predictions = {}, {}
        for split in wanted:
            results[split], rows = evaluate_split(trainer, data[split], label_names, split)
            predictions[split] = rows
            analysis = write_split_outputs(rows, label_names, split, output_dir, data_args.data_dir)
            for normalize, name in ((False, "confusion_matrix"), (True, "confusion_matrix_normalized")):
                plot_confusion_matrix(results[split]["confusion_matrix"], label_names,
                                      output_dir / f"{name}_{split}.png", normalize=normalize)
            plot_reliability_diagram(results[split]["calibration"]["bins"], output_dir / f"reliability_diagram_{split}.png",
                                     ece=results[split]["ece"])
            print(analysis)
        if has_intensity_head(model_dir):  # --task multitask: the saved head on the same inputs, as in training
            head = load_intensity_head(model_dir)
            marked = build_datasets(with_intensity_ids(wanted_splits, head.names), trainer.model.config.label2id,
                                    feature_extractor, data_args, audio_loader(wanted_splits, data_args, output_dir))
            for split, metrics in evaluate_intensity(trainer, head, marked).items():
                results[split]["intensity"] = metrics
    add_collapsed_scores(results, predictions, data_args.corpus, data_args.labels)  # emotion x intensity labels
    if seen:
        for metrics in results.values():
            metrics["seen_speakers"] = seen  # in every output, not only the log
    (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    print("\n".join([split_name, results_table(results, model_dir), *intensity_summary_lines(results),
                     *collapsed_emotions_summary_lines(results)]))
    print(f"wrote {output_dir}")
    return results


if __name__ == "__main__":
    main()

"""Pseudo-labelling rounds around the train command: `--unlabeled_dir DIR` (or `--pseudo_pool_fold F`).

    ser-hf train recipes/configs/demo.yaml --unlabeled_dir my_clips/ [--pseudo_threshold 0.9] [--pseudo_rounds 1]

Round 0 trains on the labeled clips as an ordinary run, in OUTPUT_DIR/pseudo_round_0. Round r relabels the whole
pool with round r-1's model and trains a fresh model on the labeled clips plus the pool clips scored at least the
threshold; the last round trains in OUTPUT_DIR itself, so OUTPUT_DIR is a complete, pushable run whose card has a
"Pseudo-labels" section (round 0 beside it). Rounds before the last stay in OUTPUT_DIR/pseudo_round_<r>.

Every round starts from the same initial weights and seed rather than continuing the previous model: the final
model then differs from round 0 only in its training clips, so the card's round-0-against-final comparison measures
the pseudo-labels and not extra training steps; and a model continued on its own confident answers reinforces its
own mistakes (confirmation bias) more than one trained afresh.
"""

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transformers import set_seed

from ser_hf.corpora.files import corpus_relative
from ser_hf.data.prepare import load_corpus, prepare_splits
from ser_hf.data.pseudo_pool import check_pool_isolation, pool_rows, scan_pool
from ser_hf.data.scan import report_markdown
from ser_hf.errors import UsageError, count
from ser_hf.evaluation.metrics import RESULTS_FILE
from ser_hf.experiments.pseudo_labels import (
    ROUND_DIR,
    pseudo_label_summary,
    score_pool,
    select_confident,
    training_rows,
)
from ser_hf.reporting.pseudo_report import pseudo_card_section, write_pseudo_labels_csv, write_pseudo_report
from ser_hf.training.checkpoints import resolve_resume
from ser_hf.training.output_dir import finished_run

logger = logging.getLogger("ser_hf")

@dataclass
class PseudoRound:
    """What a round adds to an ordinary training run.

    Attributes:
        rows: pseudo-labelled training rows (path, speaker, label, duration).
        card_section: results -> the card's "Pseudo-labels" markdown, or None for a round without one.
    """

    rows: list
    card_section: Callable | None = None


def _pool_description(data_args, pool):
    if data_args.unlabeled_dir:
        return f"the audio files below `{data_args.unlabeled_dir}`"
    speakers = sorted({row["speaker"] for row in pool})
    return (f"the audio of fold {data_args.pseudo_pool_fold}'s speakers ({', '.join(speakers)}), left out of labeled "
            "training with their labels held back")


def _round_args(training_args, output_dir):
    """The run's TrainingArguments for an intermediate round: its own output dir, never pushed."""
    args = copy.copy(training_args)  # not dataclasses.replace: __post_init__ must not run twice
    args.output_dir, args.push_to_hub = str(output_dir), False
    return args


def _headline(results):
    return {split: {k: m[k] for k in ("ua", "wa", "macro_f1")} for split, m in results.items()}


def prepare_pool(data_args, training_args):
    """The pool, checked for leaks against this run's splits and scanned, before any training.

    Returns:
        (kept pool rows, pool report dict: description, files, excluded_by_scan, scan)
    """
    corpus = load_corpus(data_args) if data_args.pseudo_pool_fold is not None else None
    prepared = prepare_splits(data_args, corpus)
    pool = pool_rows(data_args, corpus)
    check_pool_isolation(pool, prepared.splits, data_args)
    with training_args.main_process_first(desc="scanning the unlabeled pool"):
        kept, scan = scan_pool(pool, data_args, training_args.output_dir)
    if scan["n_excluded"]:
        logger.warning("Pseudo-label pool: the audio scan excluded %s:\n%s", count(scan["n_excluded"], "file"),
                       report_markdown(scan))
    logger.info("Pseudo-label pool: %d files, %d kept after the audio scan", len(pool), len(kept))
    # The report goes out with the model: paths relative to the pool's folder, as in the run's other reports.
    root = data_args.unlabeled_dir or data_args.data_dir
    scan = {**scan, "files": [{**f, "path": corpus_relative(f["path"], root)} for f in scan["files"]]}
    return kept, {"description": _pool_description(data_args, pool), "files": len(pool),
                  "excluded_by_scan": scan["n_excluded"], "scan": scan}


def run_pseudo_rounds(run_round, model_args, data_args, training_args, resume, command):
    """Train round 0, then `data_args.pseudo_rounds` rounds with the pool's confident pseudo-labels.

    Args:
        run_round: `run_round(model_args, data_args, training_args, resume, command, pseudo=PseudoRound | None)`
            trains and reports one ordinary run and returns {split: metrics} (the train command's `_run`).
        model_args, data_args, training_args, command: the run's.
        resume: the resolved checkpoint of the last round (in output_dir); with a resume, intermediate rounds
            already finished are reused and an interrupted one continues from its checkpoint.

    Returns:
        The last round's {split: metrics}.
    """
    if training_args.task == "multitask":
        raise UsageError("--task multitask trains on an intensity label per clip, which a pseudo-label does not give: "
                         "drop --task multitask or the pseudo-label pool")
    output_dir, threshold = Path(training_args.output_dir), data_args.pseudo_threshold
    is_main = training_args.process_index == 0
    pool, pool_report = prepare_pool(data_args, training_args)
    report = {"threshold": threshold, "pool": pool_report, "rounds": []}
    for r in range(data_args.pseudo_rounds + 1):
        last = r == data_args.pseudo_rounds
        round_dir = output_dir if last else output_dir / ROUND_DIR.format(r)
        entry = {"round": r, "output_dir": "." if last else round_dir.name, "added": 0}
        pseudo = None
        if r > 0:
            previous = output_dir / report["rounds"][-1]["output_dir"]
            logger.info("Pseudo-label round %d: labelling %d pool clips with %s", r, len(pool), previous)
            scored = score_pool(previous, pool, batch_size=training_args.per_device_eval_batch_size,
                                device="cpu" if training_args.use_cpu else None)
            selected = select_confident(scored, threshold)
            entry["summary"] = pseudo_label_summary(scored, selected, list(_label_names(previous)), threshold)
            entry["added"] = len(selected)
            if is_main:
                relative = data_args.unlabeled_dir or data_args.data_dir
                write_pseudo_labels_csv(scored, threshold, output_dir / f"pseudo_labels_round_{r}.csv", relative)
            logger.info("Pseudo-label round %d: %d of %d clips scored at least %g", r, len(selected), len(scored),
                        threshold)
            if not selected:
                logger.warning("No pool clip reached --pseudo_threshold %g: round %d trains on labeled clips only",
                               threshold, r)
            pseudo = PseudoRound(training_rows(selected), card_section=_card_section(report, entry))
        set_seed(training_args.seed)  # every round from the same initial weights (see the module docstring)
        results = _train_round(run_round, model_args, data_args, training_args, resume, command, round_dir, last,
                               pseudo)
        entry["results"] = _headline(results)
        report["rounds"].append(entry)
    if is_main:
        write_pseudo_report(output_dir, report)
    return results


def _card_section(report, entry):
    def section(results):
        rounds = [*report["rounds"], {**entry, "results": _headline(results)}]
        return pseudo_card_section({**report, "rounds": rounds})
    return section


def _label_names(model_dir):
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return [config["id2label"][str(i)] for i in range(len(config["id2label"]))]


def _train_round(run_round, model_args, data_args, training_args, resume, command, round_dir, last, pseudo):
    """One round's ordinary run; an intermediate round finished earlier is reused when resuming."""
    if last:
        return run_round(model_args, data_args, training_args, resume, command, pseudo=pseudo)
    round_resume = None
    if training_args.resume_from_checkpoint:  # the user asked to resume: finished rounds are kept as they are
        if finished_run(round_dir) and (round_dir / RESULTS_FILE).is_file():
            logger.info("Pseudo-label round in %s already finished: reused", round_dir)
            return json.loads((round_dir / RESULTS_FILE).read_text())
        round_resume = resolve_resume("auto", round_dir)
    return run_round(model_args, data_args, _round_args(training_args, round_dir), round_resume, command,
                     pseudo=pseudo)

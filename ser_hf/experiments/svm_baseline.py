"""The classical baseline as `ser-hf baseline` runs it: MFCC + prosody statistics and an SVM on a recipe's own
speaker folds and scanned files, one report (the SVM itself is `ser_hf.evaluation.baseline`)."""

import dataclasses
import json
import time
from pathlib import Path

from ser_hf.config import parse_config
from ser_hf.data.prepare import load_corpus, prepare_splits, resolve_data_args
from ser_hf.evaluation.baseline import svm_on_folds
from ser_hf.evaluation.fold_summary import mean_std
from ser_hf.storage import write_text_atomic

BASELINE_FILE = "baseline_results.json"


def run_baseline(config, overrides, folds=None, output_dir=None, workers=None, seed=0, command=None):
    """Fit and score the SVM on each chosen fold; write OUTPUT_DIR/baseline_results.json and return its report.

    Args:
        config: the recipe YAML whose corpus and folds to use.
        overrides: `--field value` recipe fields (--data_dir, --n_folds, ...).
        folds: comma-separated folds to hold out in turn, "all" (every fold but the test fold), or None (the
            config's fold).
        output_dir: where the report goes (None: the config's output_dir + "_baseline_svm").
        workers: feature-extraction processes (None: all cores).
        seed: seed of the SVM and its inner cross-validation.
        command: the command line recorded in the report.

    Returns:
        (report: corpus, labels, one row per fold (UA, WA, macro-F1, best parameters, held-out speakers) and the
         mean +- std over folds; the path of the file written)
    """
    start = time.time()
    _, data_args, training_args = parse_config(config, overrides, single_fold=not folds)
    data_args = resolve_data_args(data_args)
    if folds == "all":
        chosen = [k for k in range(data_args.n_folds) if k != data_args.test_fold]
    else:
        chosen = [int(k) for k in folds.split(",")] if folds else [data_args.fold]
    out = Path(output_dir or f"{training_args.output_dir.rstrip('/')}_baseline_svm")
    out.mkdir(parents=True, exist_ok=True)
    # Downloads or generates the corpus once, for every fold.
    corpus = None if data_args.train_manifest else load_corpus(data_args)
    label_names = prepare_splits(dataclasses.replace(data_args, fold=chosen[0]), corpus).label_names
    by_fold = svm_on_folds(data_args, chosen, out, workers=workers, seed=seed, corpus=corpus)
    results = [{"fold": k, **result} for k, result in by_fold.items()]
    report = {
        "corpus": data_args.corpus, "data_dir": str(data_args.data_dir), "n_folds": data_args.n_folds,
        "labels": label_names, "command": command, "folds": results, "summary": mean_std(results),
        "seconds": round(time.time() - start, 1),
    }
    write_text_atomic(out / BASELINE_FILE, json.dumps(report, indent=2))
    return report, out / BASELINE_FILE

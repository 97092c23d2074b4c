"""Classical baseline: MFCC + prosody statistics and an SVM, on a recipe's own speaker folds and scanned files.

Usage:
    ser-hf baseline recipes/configs/demo.yaml --fold 5
    python recipes/baseline_svm.py recipes/configs/demo.yaml --folds all [--output_dir DIR] [--field value ...]

The corpus, its folds and the audio scan are the recipe's (any corpus a config can name), so the SVM's numbers sit
beside the neural model's on exactly the same held-out speakers. Reports UA (balanced accuracy), WA and macro-F1 on
each held-out fold (with mean +- std) and writes OUTPUT_DIR/baseline_results.json. Hyper-parameters are chosen by
an inner cross-validation grouped by speaker.
"""

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from ser_hf.commands import one_line_errors
from ser_hf.config import parse_config
from ser_hf.data.prepare import prepare_splits, resolve_data_args
from ser_hf.evaluation.baseline import svm_on_folds
from ser_hf.evaluation.crossval import METRICS, mean_std
from ser_hf.reporting.command import command_line

logger = logging.getLogger("ser_hf")


def run_baseline(argv=None, prog=None):
    """Parse the arguments, run the SVM on the chosen folds, write and return the report."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Any other --field value sets a recipe field (--data_dir, --n_folds, ...).")
    parser.add_argument("config", nargs="?", help="recipe YAML whose corpus and folds to use")
    parser.add_argument("--folds", default=None,
                        help="comma-separated folds to hold out in turn, or 'all' (default: the config's fold)")
    parser.add_argument("--output_dir", help="where baseline_results.json goes (default: the config's output_dir "
                        "+ '_baseline_svm')")
    parser.add_argument("--workers", type=int, default=None, help="feature-extraction processes (default: all CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    start, argv = time.time(), sys.argv[1:] if argv is None else list(argv)
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    _, data_args, training_args = parse_config(args.config, overrides, single_fold=not args.folds)
    data_args = resolve_data_args(data_args)
    if args.folds == "all":
        folds = [k for k in range(data_args.n_folds) if k != data_args.test_fold]
    else:
        folds = [int(k) for k in args.folds.split(",")] if args.folds else [data_args.fold]
    out = Path(args.output_dir or f"{training_args.output_dir.rstrip('/')}_baseline_svm")
    out.mkdir(parents=True, exist_ok=True)

    # Also downloads or generates the corpus, once, before the folds.
    label_names = prepare_splits(dataclasses.replace(data_args, fold=folds[0])).label_names
    by_fold = svm_on_folds(data_args, folds, out, workers=args.workers, seed=args.seed)
    results = [{"fold": k, **result} for k, result in by_fold.items()]
    report = {
        "corpus": data_args.corpus, "data_dir": str(data_args.data_dir), "n_folds": data_args.n_folds,
        "labels": label_names, "command": command_line(prog or "recipes/baseline_svm.py", argv),
        "folds": results, "summary": mean_std(results), "seconds": round(time.time() - start, 1),
    }
    (out / "baseline_results.json").write_text(json.dumps(report, indent=2))
    print(" ".join(f"{m.upper()} {report['summary'][m]['mean']:.3f} +- {report['summary'][m]['std']:.3f}"
                   for m in METRICS) + f" over {len(results)} fold(s); wrote {out / 'baseline_results.json'}")
    return report


@one_line_errors
def main(argv=None, prog=None):
    run_baseline(argv, prog)
    return 0


if __name__ == "__main__":
    sys.exit(main())

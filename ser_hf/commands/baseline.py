"""Classical baseline: MFCC + prosody statistics and an SVM, on a recipe's own speaker folds and scanned files.

Usage:
    ser-hf baseline recipes/configs/demo.yaml --fold 5
    python recipes/baseline_svm.py recipes/configs/demo.yaml --folds all [--output_dir DIR] [--field value ...]

The corpus, its folds and the audio scan are the recipe's (any corpus a config can name), so the SVM's numbers sit
beside the neural model's on exactly the same held-out speakers. Reports UA (balanced accuracy), WA and macro-F1 on
each held-out fold (with mean +- std) and writes OUTPUT_DIR/baseline_results.json. Hyper-parameters are chosen by
an inner cross-validation grouped by speaker.
"""

import sys

from ser_hf.commands.options import CommandParser, check_field_options
from ser_hf.console import command


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0],
                           epilog="Any other --field value sets a recipe field (--data_dir, --n_folds, ...).")
    parser.add_argument("config", nargs="?", help="recipe YAML whose corpus and folds to use")
    parser.add_argument("--folds", default=None,
                        help="comma-separated folds to hold out in turn, or 'all' (without it: the config's fold)")
    parser.add_argument("--output_dir", help="where baseline_results.json goes (without it: the config's output_dir "
                        "+ '_baseline_svm')")
    parser.add_argument("--workers", type=int, default=None, help="feature-extraction processes (without it: all CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the SVM and its inner cross-validation")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args, overrides = parser.parse_known_args(argv)
    from ser_hf.config import config_fields  # parsed: now the recipe's fields (and torch)

    check_field_options(overrides, config_fields(), parser)
    from ser_hf.experiments.svm_baseline import run_baseline
    from ser_hf.reporting.command import command_line

    report, written = run_baseline(args.config, overrides, folds=args.folds, output_dir=args.output_dir,
                                   workers=args.workers, seed=args.seed,
                                   command=command_line(prog or "recipes/baseline_svm.py", argv))
    print(f"{summary_line(report)}; wrote {written}")
    return 0


def summary_line(report):
    """UA / WA / macro-F1 over the folds: mean +- std, or the one fold's scores (a single fold has no spread)."""
    folds = report["folds"]
    if len(folds) == 1:
        scores = " ".join(f"{m.upper()} {folds[0][m]:.3f}" for m in ("ua", "wa", "macro_f1"))
        return f"{scores} on fold {folds[0]['fold']}"
    return " ".join(f"{m.upper()} {report['summary'][m]['mean']:.3f} +- {report['summary'][m]['std']:.3f}"
                    for m in ("ua", "wa", "macro_f1")) + f" over {len(folds)} folds"


if __name__ == "__main__":
    sys.exit(main())

"""Speaker-independent k-fold cross-validation: one model per speaker fold, then per-fold and mean +- std scores.

Usage:
    ser-hf cv recipes/configs/demo.yaml [--parallel 2] [--folds 0,1] [--field value ...]
    python recipes/crossval.py recipes/configs/demo.yaml [--parallel 2] [--folds 0,1] [--field value ...]
    bash run.sh demo --cv
    bash run.sh ravdess --cv [--data_dir DIR] [--field value ...]

Fold k is an ordinary `ser-hf train` run (= recipes/finetune.py) in OUTPUT_DIR/fold_k (OUTPUT_DIR: --output_dir, default the config's
output_dir + "_cv"). Finished folds are not retrained and an interrupted one resumes from its newest intact
checkpoint, so rerunning the same command completes a cross-validation. The classical SVM baseline runs first on
the same folds; OUTPUT_DIR gets crossval_results.json / .md (per-fold UA, WA, macro-F1, mean +- std, the SVM
beside each fold) and the confusion matrix pooled over all held-out clips. With --test_fold T, fold T is held out
from every run and the fold models' averaged probabilities (an ensemble) are scored on it.
"""

import logging
import sys

from ser_hf.commands.options import CommandParser, check_field_options
from ser_hf.console import command
from ser_hf.errors import count

logger = logging.getLogger("ser_hf")


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0],
                           epilog="Any other --field value goes to every fold's training run "
                           "(see recipes/finetune.py --help).")
    parser.add_argument("config", nargs="?", help="recipe YAML, as for finetune.py")
    parser.add_argument("--folds", help="comma-separated folds to run (without it: every fold but the test fold)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="folds trained at once (CPU: 2 single-threaded runs beat 1 run on 2 threads)")
    parser.add_argument("--launcher", help='how each fold starts, e.g. "accelerate launch --num_processes 4"')
    parser.add_argument("--baseline", choices=("true", "false"), default="true",
                        help="run the MFCC + prosody SVM on the same folds and report it beside each fold")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args, passthrough = parser.parse_known_args(argv)
    from ser_hf.config import config_fields  # parsed: now the recipe's fields (and torch)

    check_field_options(passthrough, config_fields(), parser)
    from ser_hf.experiments.crossval import cross_validate
    from ser_hf.reporting.command import command_line
    from ser_hf.reporting.crossval_report import markdown_table

    report, status, root = cross_validate(args.config, passthrough, args.folds, parallel=args.parallel,
                                          launcher=args.launcher, baseline=args.baseline == "true",
                                          command=command_line(prog or "recipes/crossval.py", argv))
    if report is None:
        logger.error("no fold finished: %s", status)
        return 1
    print(markdown_table(report))
    print(f"wrote {root}/crossval_results.json, crossval_results.md and the pooled confusion matrices")
    failed = {k: s for k, s in status.items() if s.startswith("failed")}
    if failed:
        for k, s in failed.items():
            logger.error("fold %d %s", k, s)
        logger.error("%s failed; the table covers the others. Rerun the same command: finished folds are "
                     "kept, interrupted ones resume.", count(len(failed), "fold"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

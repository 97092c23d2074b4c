"""Speaker-independent k-fold cross-validation: one model per speaker fold, then per-fold and mean +- std scores.

Usage:
    ser-hf cv recipes/configs/demo.yaml [--parallel 2] [--folds 0,1] [--field value ...]
    ser-hf cv CONFIG.yaml --storage postgresql://USER:PASSWORD@HOST:PORT/DB --output_dir SHARED  (every node)
    python recipes/crossval.py recipes/configs/demo.yaml [--parallel 2] [--folds 0,1] [--field value ...]
    bash run.sh demo --cv
    bash run.sh ravdess --cv [--data_dir DIR] [--field value ...]

Fold k is an ordinary `ser-hf train` run (= recipes/finetune.py) in OUTPUT_DIR/fold_k (OUTPUT_DIR: --output_dir, default the config's
output_dir + "_cv"). Finished folds are not retrained and an interrupted one resumes from its newest intact
checkpoint, so rerunning the same command completes a cross-validation. The classical SVM baseline runs first on
the same folds; OUTPUT_DIR gets crossval_results.json / .md (per-fold UA, WA, macro-F1, mean +- std, the SVM
beside each fold) and the confusion matrix pooled over all held-out clips. With --test_fold T, fold T is held out
from every run and the fold models' averaged probabilities (an ensemble) are scored on it.

Several machines: give every worker the same command with --storage postgresql://USER:PASSWORD@HOST:PORT/DB and an
--output_dir they all reach; each takes the next unfinished fold, a dead worker's fold is retried once by another,
and the report is written once (docs/several-machines.md).
"""

import logging
import sys

from ser_hf.commands.options import CommandParser, check_field_options
from ser_hf.console import command
from ser_hf.errors import UsageError, count

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
    parser.add_argument("--storage", help="postgresql://USER:PASSWORD@HOST:PORT/DB: one cross-validation shared by "
                        "workers on several machines (each takes the next unfinished fold)")
    parser.add_argument("--study_name", help="with --storage: the study's name in the database (default: ser_hf_cv_ "
                        "and a hash of the output dir's full path)")
    parser.add_argument("--heartbeat_interval", type=int, default=30,
                        help="with --storage: seconds between a running fold's heartbeats")
    parser.add_argument("--grace_period", type=int, default=120,
                        help="with --storage: seconds without a heartbeat after which a fold's worker counts as dead "
                        "and the fold is retried (once) by another worker")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args, passthrough = parser.parse_known_args(argv)
    from ser_hf.config import config_fields  # parsed: now the recipe's fields (and torch)

    check_field_options(passthrough, config_fields(), parser)
    from ser_hf.reporting.command import command_line

    if args.storage:
        return _shared(args, passthrough, argv, prog)
    if args.study_name:
        raise UsageError("--study_name names a shared study: give --storage postgresql://... too")
    from ser_hf.experiments.crossval import cross_validate
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


def _shared(args, passthrough, argv, prog):
    """`--storage`: this worker's share of a cross-validation that several workers run."""
    if args.heartbeat_interval < 1 or args.grace_period <= args.heartbeat_interval:
        raise UsageError("--heartbeat_interval must be at least 1 and --grace_period longer than it "
                         f"(given {args.heartbeat_interval} and {args.grace_period})")
    if args.parallel != 1:
        raise UsageError("--parallel does not apply with --storage: a worker runs one fold at a time; start more "
                         "workers instead")
    from ser_hf.experiments.shared_crossval import SharedOptions, cross_validate_shared
    from ser_hf.experiments.storage_url import redact_storage_args
    from ser_hf.reporting.command import command_line

    options = SharedOptions(args.storage, args.study_name, args.heartbeat_interval, args.grace_period)
    # The command line is saved (fold model cards): the database password inside --storage is hidden.
    shown = command_line(prog or "recipes/crossval.py", redact_storage_args(argv))
    return cross_validate_shared(args.config, passthrough, args.folds, options, launcher=args.launcher,
                                 baseline=args.baseline == "true", command=shown)


if __name__ == "__main__":
    sys.exit(main())

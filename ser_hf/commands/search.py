"""Bayesian hyperparameter search (Optuna TPE, pruning) over speaker folds: resumable, the best config ready to run.

Usage:
    ser-hf search CONFIG.yaml [--n_trials 20] [--folds 0,1,2] [--test_fold T] [--storage sqlite:///OUT/study.db]
    python recipes/search.py recipes/configs/demo.yaml --n_trials 20 --probe true --test_fold 5
    bash run.sh demo --search [--probe true] [--n_trials N]
    bash run.sh ravdess --search --test_fold 5 [--n_trials N]

The search space is the config's `search_space` key (fine-tuning trials) or `probe_search_space` (with --probe
true: the head trained on the frozen encoder's cached features, seconds a trial). A trial is its config run on
every chosen fold (--folds, default all but the test fold); its score is the mean validation UA over them. Give
--test_fold T (recommended): fold T takes no part in any trial, and the best config's fold models are scored on it
at the end. OUTPUT_DIR (--output_dir, default the config's output_dir + "_search") holds the study (study.db),
trial_<k>/ (its config.yaml; fine-tuning: its fold runs), trials.csv/.md, search_results.json/.md,
best_config.yaml, optimization_history.png, param_importances.png and the best config's cross-validation with its
test-fold ensemble (in the best trial's dir, trial_<k>/crossval_results.md). Rerunning the same command continues the
study up to --n_trials finished trials; a trial interrupted by a kill or Ctrl-C is retried with its parameters.

Several machines: give every worker the same command with --storage postgresql://USER:PASSWORD@HOST:PORT/DB and an
--output_dir they all reach; they run one study of --n_trials trials between them (docs/several-machines.md).
"""

import sys

from ser_hf.commands.options import CommandParser, check_field_options
from ser_hf.console import command, pop_option
from ser_hf.errors import UsageError


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0],
                           epilog="Any other --field value goes to every trial (and the best config).")
    parser.add_argument("config", nargs="?", help="recipe YAML with a search_space (or probe_search_space) key")
    parser.add_argument("--n_trials", type=int, default=20,
                        help="finished (complete or pruned) trials the study should hold; a rerun continues to it")
    parser.add_argument("--folds", help="comma-separated validation folds of every trial (without it: all but the "
                        "test fold)")
    parser.add_argument("--storage", help="optuna storage URL (without it: sqlite:///OUTPUT_DIR/study.db); "
                        "postgresql://USER:PASSWORD@HOST:PORT/DB: one study shared by workers on several machines")
    parser.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                        help="stop a trial whose running mean UA after a fold falls below earlier trials' (median) "
                        "or outside the best third (halving)")
    parser.add_argument("--sampler_seed", type=int, default=0, help="seed of the TPE sampler")
    parser.add_argument("--parallel", type=int, default=1, help="fine-tuning folds trained at once (as ser-hf cv)")
    parser.add_argument("--launcher", help='how each fine-tuning fold starts, e.g. "accelerate launch"')
    parser.add_argument("--final_cv", choices=("true", "false"), default="true",
                        help="cross-validate the best config at the end (its test-fold ensemble with --test_fold)")
    parser.add_argument("--baseline", choices=("true", "false"), default="true",
                        help="the final cross-validation runs the SVM baseline on the same folds")
    parser.add_argument("--report", choices=("true", "false"), default="false",
                        help="write the report of the study as it stands (trials, best config, its cross-validation) "
                        "and run no trial")
    parser.add_argument("--study_name", help="the study's name in --storage (default ser_hf_search); give each search "
                        "sharing one database its own")
    parser.add_argument("--heartbeat_interval", type=int, default=30,
                        help="shared study (postgresql --storage): seconds between a running trial's heartbeats")
    parser.add_argument("--grace_period", type=int, default=120,
                        help="shared study: seconds without a heartbeat after which a trial's worker counts as dead "
                        "and the trial is retried (once) by another worker")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args, passthrough = parser.parse_known_args(argv)
    if not args.config:
        raise UsageError("give the recipe YAML whose search_space to search, e.g. recipes/configs/demo.yaml")
    if args.n_trials < 1:
        raise UsageError("--n_trials must be at least 1")
    if args.heartbeat_interval < 1 or args.grace_period <= args.heartbeat_interval:
        raise UsageError("--heartbeat_interval must be at least 1 and --grace_period longer than it "
                         f"(given {args.heartbeat_interval} and {args.grace_period})")
    for name in ("fold", "train_manifest"):
        if pop_option(list(passthrough), name) is not None:
            raise UsageError(f"--{name} does not apply to a search: every trial holds out each of --folds in turn")
    from ser_hf.config import config_fields  # parsed: now the recipe's fields (and torch)

    check_field_options(passthrough, config_fields(), parser)
    from ser_hf.experiments.search import SearchSettings, run_search
    from ser_hf.experiments.storage_url import redact_storage_args
    from ser_hf.reporting.command import command_line

    settings = SearchSettings(n_trials=args.n_trials, folds=args.folds, storage=args.storage, pruner=args.pruner,
                              sampler_seed=args.sampler_seed, parallel=args.parallel, launcher=args.launcher,
                              final_cv=args.final_cv == "true", baseline=args.baseline == "true",
                              heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
                              report_only=args.report == "true", study_name=args.study_name)
    # The command line is saved (reports, fold model cards): the database password inside --storage is hidden.
    shown = command_line(prog or "recipes/search.py", redact_storage_args(argv))
    return run_search(args.config, passthrough, settings, shown)


if __name__ == "__main__":
    sys.exit(main())

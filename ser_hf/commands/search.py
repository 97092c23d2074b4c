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
"""

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import optuna

from ser_hf.commands import one_line_errors
from ser_hf.commands.crossval import pop_option, run_crossval
from ser_hf.config import UsageError, parse_config
from ser_hf.data.prepare import audio_loader, exclude_bad_audio, load_corpus, prepare_splits, resolve_data_args
from ser_hf.evaluation.search import (
    best_trial, check_space_values, config_defaults, config_values, default_storage, finished_trials, open_study,
    parse_search_space, recover_killed_trials, trial_config,
)
from ser_hf.evaluation.search_objectives import FineTuneObjective, ProbeObjective, TrialFailed, prepare_probe_folds
from ser_hf.reporting.command import command_line
from ser_hf.reporting.search_report import (
    BEST_CONFIG, plot_search, search_summary, trial_rows, write_best_config, write_search_report,
)
from ser_hf.training.output_dir import OutputDirLock
from ser_hf.training.probe import head_model_args

logger = logging.getLogger("ser_hf")

MAX_FAILURES_IN_A_ROW = 3  # a config that crashes every trial is a bug to fix, not a search to continue


def _parser(prog):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Any other --field value goes to every trial (and the best config).")
    parser.add_argument("config", nargs="?", help="recipe YAML with a search_space (or probe_search_space) key")
    parser.add_argument("--n_trials", type=int, default=20,
                        help="finished (complete or pruned) trials the study should hold; a rerun continues to it "
                        "(default 20)")
    parser.add_argument("--folds", help="comma-separated validation folds of every trial (default: all but the test "
                        "fold)")
    parser.add_argument("--storage", help="optuna storage URL (default sqlite:///OUTPUT_DIR/study.db)")
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
    return parser


def _folds(text, data_args):
    # Never a validation fold: the test fold, nor an unlabeled pseudo-label pool where that field exists.
    held = {data_args.test_fold, data_args.pseudo_pool_fold} - {None}
    folds = [int(k) for k in text.split(",")] if text else [k for k in range(data_args.n_folds) if k not in held]
    if not folds or not all(0 <= k < data_args.n_folds and k not in held for k in folds) or len(set(folds)) < len(folds):
        raise UsageError(f"--folds {text}: distinct folds in 0..{data_args.n_folds - 1}, without the test fold "
                         f"{data_args.test_fold}" + (f" or the held-out folds {sorted(held)}" if len(held) > 1 else ""))
    return folds


def _prepare_corpus(data_args, root):
    """Fine-tuning trials: download / generate, scan and decode the corpus once, before parallel folds read it."""
    corpus = load_corpus(data_args)
    prepared = prepare_splits(data_args, corpus)
    if not prepared.speaker_independent:
        raise UsageError("the corpus has no speaker column: folds would not be speaker-independent (add speakers)")
    scanned, _ = exclude_bad_audio(prepared.splits, data_args, root)
    audio_loader(scanned, data_args, root)


def _run_trials(study, objective, n_trials):
    """Run trials until the study holds n_trials finished ones. Returns False after too many failures in a row."""
    failures = 0
    while len(finished_trials(study)) < n_trials:
        try:
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        except KeyboardInterrupt:
            recover_killed_trials(study)  # queued for the next run of the same command
            raise
        last = study.trials[-1]
        failures = failures + 1 if last.state == optuna.trial.TrialState.FAIL else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            logger.error("%d trials in a row failed (last: %s): fix the config before searching further", failures,
                         last.user_attrs.get("error", "see the log"))
            return False
    return True


def search(args, passthrough, argv, prog):
    """The search itself (see the module docstring); returns the exit code."""
    root_arg = pop_option(passthrough, "output_dir")
    model_args, data_args, training_args = parse_config(args.config, passthrough, single_fold=False)
    data_args = resolve_data_args(data_args)
    if data_args.train_manifest:
        raise UsageError("the config sets train_manifest; a search holds out each speaker fold in turn")
    folds = _folds(args.folds, data_args)
    for k in folds:  # --probe / --init_head_from checked now, for every fold
        head_model_args(model_args, dataclasses.replace(data_args, fold=k), training_args)
    probe = training_args.probe
    key = "probe_search_space" if probe else "search_space"
    base = config_values(args.config, passthrough)
    if key not in base:
        raise UsageError(f"{args.config} has no {key}: add one (recipes/configs/demo.yaml has both kinds)")
    params = parse_search_space(base[key], f"{args.config}: {key}", probe=probe)
    root = Path(root_arg or f"{training_args.output_dir.rstrip('/')}_search")
    command = command_line(prog, argv)

    with OutputDirLock(root):  # one search per output dir: a trial left RUNNING was killed
        check_space_values(base, params, root)
        setup = {"mode": "probe" if probe else "fine-tune", "folds": folds, "test_fold": data_args.test_fold,
                 "space": base[key], "config": {k: v for k, v in base.items() if k not in ("output_dir",
                                                                                     "search_space",
                                                                                     "probe_search_space")}}
        storage = args.storage or default_storage(root)
        study = open_study(storage, setup, seed=args.sampler_seed, pruner=args.pruner)
        recover_killed_trials(study)
        if not study.trials:  # the first trial is the config as it is: the reference every trial is compared with
            study.enqueue_trial(config_defaults(base, params), user_attrs={"config_defaults": True})
        if probe:
            objective = ProbeObjective(root, base, params, folds,
                                       prepare_probe_folds(model_args, data_args, training_args, folds, root))
        else:
            _prepare_corpus(dataclasses.replace(data_args, fold=folds[0]), root)
            objective = FineTuneObjective(root, base, params, folds, parallel=args.parallel, launcher=args.launcher,
                                          command=command)
        completed = _run_trials(study, objective, args.n_trials)
        return _report(study, base, params, folds, data_args, root, command, args, probe) if completed else 1


def _report(study, base, params, folds, data_args, root, command, args, probe):
    """Trials table, plots, best config; then the best config's cross-validation (and test-fold ensemble)."""
    best = best_trial(study)
    rows = trial_rows(study, folds)
    reference = next((t for t in study.trials if t.user_attrs.get("config_defaults")
                      and t.state == optuna.trial.TrialState.COMPLETE), None)
    # The best trial's own dir: fine-tuning trials' folds are already there; a later, better trial gets its own.
    cv_root = root / best.user_attrs["run_dir"] if best is not None else None
    summary = search_summary(study, best, reference, folds, data_args.test_fold, rows,
                             extra={"mode": "probe" if probe else "fine-tune", "best_cv": str(cv_root) if cv_root else None,
                                    "command": command, "storage": args.storage or default_storage(root)})
    write_search_report(root, summary, rows)
    plot_search(study, root)
    if best is None:
        logger.error("no trial completed: see %s/trials.md", root)
        return 1
    best_path = write_best_config(trial_config(base, best.params, output_dir=root / "best_model", fold=folds[0]), root / BEST_CONFIG,
                                  summary, command)
    print((root / "search_results.md").read_text())
    print(f"wrote {best_path}, {root}/trials.csv, search_results.json and the plots")
    if args.final_cv == "false":
        return 0
    model_args, best_data, training_args = parse_config(best_path, single_fold=False)
    best_data = dataclasses.replace(resolve_data_args(best_data), fold=folds[0])
    report, status = run_crossval(best_path, [], best_data, folds, cv_root, parallel=args.parallel,
                                  launcher=args.launcher, baseline=args.baseline == "true", command=command,
                                  probe_args=(model_args, training_args) if probe else None)
    if report is None or any(s.startswith("failed") for s in status.values()):
        logger.error("the best config's cross-validation did not finish: %s", status)
        return 1
    print(f"the best config's cross-validation: {cv_root}/crossval_results.md")
    return 0


@one_line_errors
def main(argv=None, prog=None):
    parser = _parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args, passthrough = parser.parse_known_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if not args.config:
        raise UsageError("give the recipe YAML whose search_space to search, e.g. recipes/configs/demo.yaml")
    if args.n_trials < 1:
        raise UsageError("--n_trials must be at least 1")
    for name in ("fold", "train_manifest"):
        if pop_option(list(passthrough), name) is not None:
            raise UsageError(f"--{name} does not apply to a search: every trial holds out each of --folds in turn")
    return search(args, passthrough, argv, prog or "recipes/search.py")


if __name__ == "__main__":
    sys.exit(main())

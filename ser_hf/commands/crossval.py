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

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from ser_hf.commands import one_line_errors
from ser_hf.config import UsageError, parse_config
from ser_hf.data.prepare import audio_loader, exclude_bad_audio, load_corpus, prepare_splits, resolve_data_args
from ser_hf.evaluation.baseline import svm_on_folds
from ser_hf.evaluation.crossval import collect_fold_results, ensemble_on_test, fold_dir, run_folds, summarize
from ser_hf.reporting.command import command_line
from ser_hf.reporting.crossval_report import markdown_table, write_crossval_report
from ser_hf.reporting.pseudo_report import pseudo_crossval_markdown, pseudo_crossval_summary
from ser_hf.reporting.results import write_predictions_csv
from ser_hf.training.probe import head_model_args, prefill_probe_cache

logger = logging.getLogger("ser_hf")


def pop_option(args, name):
    """Remove `--name value` / `--name=value` from args and return the value (None when absent)."""
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if arg.startswith(f"--{name}="):
            del args[i]
            return arg.split("=", 1)[1]
    return None


def _cached_svm(data_args, folds, root, corpus):
    """The SVM baseline of every fold, computed once per cross-validation root and kept in baseline_svm.json."""
    cached = root / "baseline_svm.json"
    baseline = {int(k): v for k, v in json.loads(cached.read_text()).items()} if cached.is_file() else {}
    missing = [k for k in folds if k not in baseline]
    if missing:
        baseline.update(svm_on_folds(data_args, missing, root, workers=data_args.scan_workers, corpus=corpus))
        cached.write_text(json.dumps(baseline, indent=2))
    return baseline


def run_crossval(config, overrides, data_args, folds, root, parallel=1, launcher=None, baseline=True, command=None,
                 probe_args=None):
    """Train every unfinished fold, then write the cross-validation report.

    Args:
        config: the recipe YAML every fold runs.
        overrides: `--field value` arguments for every fold (without --fold / --output_dir).
        data_args: the parsed DataArguments of config + overrides.
        folds: the folds to hold out in turn.
        root: the cross-validation output dir; fold k trains in root/fold_k.
        parallel, launcher: see `ser_hf.evaluation.crossval.run_folds`.
        baseline: also run the SVM on the same folds and report it beside each fold.
        command: the command line shown on the fold model cards.
        probe_args: (ModelArguments, SERTrainingArguments) of a `--probe true` cross-validation: the probe cache
            is filled here, once for every fold.

    Returns:
        (report dict, {fold: status}), or (None, status) when no fold finished.

    Raises:
        UsageError: the corpus has no speakers, so no fold could be speaker-independent.
    """
    root.mkdir(parents=True, exist_ok=True)
    # Download / generate the corpus, scan it and decode it once, here, so that parallel folds only read the caches.
    corpus = load_corpus(data_args)  # once: the splits here and the SVM's folds share it
    prepared = prepare_splits(data_args, corpus)
    if not prepared.speaker_independent:
        raise UsageError("the corpus has no speaker column: folds would not be speaker-independent (add speakers)")
    scanned, _ = exclude_bad_audio(prepared.splits, data_args, root)
    load_audio = audio_loader(scanned, data_args, root)
    if probe_args is not None:  # every clip through the frozen encoder once, here: the folds only read the cache
        prefill_probe_cache(*probe_args, data_args, scanned, prepared.label_names, load_audio, root)
    svm = _cached_svm(data_args, folds, root, corpus) if baseline else None

    status = run_folds(config, overrides, folds, root, parallel=parallel, launcher=launcher, command=command)
    fold_results = collect_fold_results(root, folds)
    if not fold_results:
        return None, status
    report = summarize(fold_results, prepared.label_names, svm)
    report["status"] = status
    if data_args.test_fold is not None:
        report["ensemble"], rows = ensemble_on_test([fold_dir(root, k) for k in fold_results], data_args,
                                                    data_args.test_fold, root)
        write_predictions_csv(rows, root / "ensemble_predictions_test.csv", data_args.data_dir)
    pseudo = pseudo_crossval_summary({k: fold_dir(root, k) for k in fold_results})
    if pseudo is not None:  # --unlabeled_dir / --pseudo_pool_fold: each fold's round 0 beside its final round
        report["pseudo_labels"] = pseudo
        (root / "pseudo_crossval.md").write_text(pseudo_crossval_markdown(pseudo) + "\n")
    write_crossval_report(root, report)
    return report, status


@one_line_errors
def main(argv=None, prog=None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], allow_abbrev=False,  # --fold is not --folds
                                     epilog="Any other --field value goes to every fold's training run "
                                     "(see recipes/finetune.py --help).")
    parser.add_argument("config", nargs="?", help="recipe YAML, as for finetune.py")
    parser.add_argument("--folds", help="comma-separated folds to run (default: all n_folds)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="folds trained at once (CPU: 2 single-threaded runs beat 1 run on 2 threads)")
    parser.add_argument("--launcher", help='how each fold starts, e.g. "accelerate launch --num_processes 4"')
    parser.add_argument("--baseline", choices=("true", "false"), default="true",
                        help="run the MFCC + prosody SVM on the same folds and report it beside each fold")
    argv = sys.argv[1:] if argv is None else list(argv)
    args, passthrough = parser.parse_known_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    for name in ("fold", "train_manifest"):
        if pop_option(list(passthrough), name) is not None:
            parser.error(f"--{name} does not apply to cross-validation: every fold is held out in turn (use --folds)")
    root = pop_option(passthrough, "output_dir")
    # Every field is checked before hours of work; the config's own fold plays no part here.
    model_args, data_args, training_args = parse_config(args.config, passthrough, single_fold=False)
    data_args = resolve_data_args(data_args)
    if data_args.train_manifest:
        parser.error("the config sets train_manifest; cross-validation holds out each speaker fold in turn")
    root = Path(root or f"{training_args.output_dir.rstrip('/')}_cv")
    test = data_args.test_fold  # held out from every run; the fold models' ensemble is scored on it
    pool = data_args.pseudo_pool_fold  # every run's unlabeled pool (--pseudo_pool_fold): never a validation fold
    folds = [int(k) for k in args.folds.split(",")] if args.folds else \
        [k for k in range(data_args.n_folds) if k not in (test, pool)]
    if not all(0 <= k < data_args.n_folds and k not in (test, pool) for k in folds):
        parser.error(f"--folds {args.folds}: folds are 0..{data_args.n_folds - 1} (n_folds {data_args.n_folds}), "
                     f"without the test fold {test}" + (f" and the pseudo-label pool fold {pool}" if pool is not None
                                                        else ""))
    data_args = dataclasses.replace(data_args, fold=folds[0])  # the config's own fold plays no part here
    for k in folds:  # --probe / --init_head_from checked now, for every fold (a fold starts from its own probe)
        head_model_args(model_args, dataclasses.replace(data_args, fold=k), training_args)

    report, status = run_crossval(args.config, passthrough, data_args, folds, root, parallel=args.parallel,
                                  launcher=args.launcher, baseline=args.baseline == "true",
                                  command=command_line(prog or "recipes/crossval.py", argv),
                                  probe_args=(model_args, training_args) if training_args.probe else None)
    if report is None:
        logger.error("no fold finished: %s", status)
        return 1
    print(markdown_table(report))
    print(f"wrote {root}/crossval_results.json, crossval_results.md and the pooled confusion matrices")
    failed = {k: s for k, s in status.items() if s.startswith("failed")}
    if failed:
        for k, s in failed.items():
            logger.error("fold %d %s", k, s)
        logger.error("%d fold(s) failed; the table covers the others. Rerun the same command: finished folds are "
                     "kept, interrupted ones resume.", len(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

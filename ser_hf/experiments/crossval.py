"""Speaker-independent k-fold cross-validation: one training run per fold, then one table (`ser-hf cv`).

Each fold is an ordinary `ser-hf train` run in its own output dir (`<root>/fold_<k>`), started as a subprocess: a
crash, an out-of-memory kill or a pre-emption loses one fold at most, and a rerun skips the folds that finished and
resumes an interrupted one. The corpus is prepared once before the folds start (scan, decoded audio, a probe's
cache), so folds running in parallel only read the caches. The scores over folds are
`ser_hf.evaluation.fold_summary`; the report files `ser_hf.reporting.crossval_report`.
"""

import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ser_hf.config import parse_config
from ser_hf.console import pop_option
from ser_hf.data.dimensions import check_dimensional_data
from ser_hf.data.prepare import load_corpus, prepare_corpus, prepare_splits, resolve_data_args
from ser_hf.errors import UsageError
from ser_hf.evaluation.baseline import svm_on_folds
from ser_hf.evaluation.dimensional import compute_dimensional_metrics
from ser_hf.evaluation.fold_summary import METRICS, collect_fold_results, fold_dir, fold_finished, mean_std, summarize
from ser_hf.evaluation.held_out import (
    load_trained,
    predict_probabilities,
    predict_values,
    score_probabilities,
    score_values,
)
from ser_hf.evaluation.metrics import compute_ser_metrics
from ser_hf.experiments.pseudo_labels import has_rounds_to_resume
from ser_hf.reporting.crossval_report import write_crossval_report
from ser_hf.reporting.dimensional_report import write_dimensional_predictions_csv
from ser_hf.reporting.pseudo_report import pseudo_crossval_markdown, pseudo_crossval_summary
from ser_hf.reporting.results import write_predictions_csv
from ser_hf.storage import write_text_atomic
from ser_hf.training.checkpoints import latest_intact_checkpoint
from ser_hf.training.probe import head_model_args, prefill_probe_cache

logger = logging.getLogger(__name__)


def fold_command(config, args, fold, output_dir, launcher=None):
    """The finetune.py command line of one fold.

    Args:
        config: the recipe YAML (or None).
        args: the user's `--field value` overrides (without --fold / --output_dir).
        fold: the held-out fold.
        output_dir: the fold's output dir; a run with an intact checkpoint there is resumed.
        launcher: how to start Python, e.g. "accelerate launch --num_processes 4" (it must take `-m MODULE`, as
            accelerate launch and torchrun do); default this interpreter.
    """
    # The package's own entry point: the same `ser-hf train` a user runs, wherever the checkout is.
    start = shlex.split(launcher) if launcher else [sys.executable]
    command = [*start, "-m", "ser_hf.cli", "train", *([str(config)] if config else []), *args,
               "--fold", str(fold), "--output_dir", str(output_dir)]
    # An interrupted fold resumes: from its checkpoint, or (pseudo-labels) from its finished or saved rounds.
    if latest_intact_checkpoint(output_dir) is not None or has_rounds_to_resume(output_dir):
        command += ["--resume", "true"]
    return command


def _threads_per_run(parallel):
    return str(max(1, (os.cpu_count() or 1) // parallel))


def _error_line(log_path):
    """": <the fold's one-line error>" (a full disk, a bad option) from the end of its log, or ""."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
            tail = log.read().decode(errors="replace")
    except OSError:
        return ""
    errors = [line.split(": error: ", 1)[1] for line in tail.splitlines() if ": error: " in line]
    return f": {errors[-1]}" if errors else ""


def run_folds(config, args, folds, root, parallel=1, launcher=None, command=None):
    """Train every unfinished fold; finished folds are kept as they are.

    Args:
        config: the recipe YAML.
        args: `--field value` overrides passed to every fold.
        folds: fold indices to run.
        root: the cross-validation root; fold k goes to `root/fold_k`, its log to `root/logs/fold_k.log`.
        parallel: folds trained at once. On CPU, two single-threaded runs get more done than one run on two
            threads (small convolutions do not scale across cores); each run gets cores/parallel threads.
        launcher: see `fold_command`.
        command: the cross-validation command, shown on each fold's model card (unless run.sh set one).

    Returns:
        {fold: "finished" | "skipped" | "failed (exit N[: its one-line error], see LOG)"}.
    """
    logs = Path(root) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    status, lock = {}, threading.Lock()
    todo = []
    for k in folds:
        if fold_finished(fold_dir(root, k)):
            status[k] = "skipped"
            logger.info("fold %d: already finished in %s, not retrained (delete it to retrain)", k, fold_dir(root, k))
        else:
            todo.append(k)
    env = dict(os.environ)
    if command:
        env.setdefault("SER_HF_COMMAND", command)  # finetune.py redacts secrets before printing it
    if parallel > 1:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, _threads_per_run(parallel))

    def run(k):
        argv = fold_command(config, args, k, fold_dir(root, k), launcher)
        log_path = logs / f"fold_{k}.log"
        logger.info("fold %d: training -> %s (log: %s)", k, fold_dir(root, k), log_path)
        with open(log_path, "ab") as log:
            log.write(("$ " + shlex.join(argv) + "\n").encode())
            log.flush()
            if parallel == 1:  # one fold at a time: show its progress as well as logging it
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                # Bytes as they come, not lines: a progress bar redraws itself with "\r", which a line reader
                # would turn into one printed line per update.
                while chunk := proc.stdout.read1(1 << 16):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                    log.write(chunk)
                code = proc.wait()
            else:
                code = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        with lock:
            status[k] = "finished" if code == 0 and fold_finished(fold_dir(root, k)) else \
                f"failed (exit {code}{_error_line(log_path)}, see {log_path})"
            logger.info("fold %d: %s", k, status[k])

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(run, todo))
    return {k: status[k] for k in folds}


def ensemble_on_test(model_dirs, data_args, test_fold, report_dir, batch_size=16, task="emotion"):
    """Average the fold models' class probabilities on the test fold that none of them trained or selected on.

    With `task` "dimensional" the models' predicted values are averaged, and scored by CCC (`ensemble_values`).

    Args:
        model_dirs: finished fold output dirs, all trained with `--test_fold test_fold`.
        data_args: the DataArguments of the runs.
        test_fold: the fold held out from every run.
        report_dir: where the audio scan report of this evaluation goes.
        batch_size: evaluation batch size.

    Returns:
        ({"test_fold", "speakers", "models", "single_models": mean/std of each model alone, "ensemble": metrics},
         per-clip rows of the ensemble)
    """
    other = next(k for k in range(data_args.n_folds) if k != test_fold)  # any validation fold: only "test" is used
    prepared = prepare_corpus(dataclasses.replace(data_args, fold=other, test_fold=test_fold), report_dir,
                              keep=["test"], task=task)
    if task == "dimensional":
        return ensemble_values(model_dirs, prepared, data_args, batch_size)
    total, singles, label_names = None, [], None
    for model_dir in model_dirs:
        with tempfile.TemporaryDirectory() as scratch:
            trainer, feature_extractor, names = load_trained(model_dir, scratch, batch_size)
            if label_names not in (None, names):
                raise ValueError(f"{model_dir} orders its labels {names}, the others {label_names}")
            label_names = names
            test = prepared.datasets(trainer.model.config.label2id, feature_extractor, data_args)["test"]
            probs, label_ids = predict_probabilities(trainer, test, "test")
        singles.append({m: float(v) for m, v in compute_ser_metrics(probs.argmax(-1), label_ids, label_names).items()
                        if m in METRICS})
        total = probs if total is None else total + probs
    metrics, rows = score_probabilities(total / len(model_dirs), label_ids, test, label_names)
    speakers = sorted({row["speaker"] for row in rows})
    return {"test_fold": test_fold, "speakers": speakers, "models": len(model_dirs),
            "single_models": mean_std(singles), "ensemble": metrics}, rows


def ensemble_values(model_dirs, prepared, data_args, batch_size=16):
    """`ensemble_on_test` for regression models: the mean of the fold models' values on the prepared test split.

    Returns:
        ({"test_fold", "speakers", "models", "single_models": mean/std of each model's CCC and MSE, "ensemble":
          dimensional metrics}, per-clip rows of the ensemble)
    """
    total, singles, names = None, [], None
    for model_dir in model_dirs:
        with tempfile.TemporaryDirectory() as scratch:
            trainer, feature_extractor, own = load_trained(model_dir, scratch, batch_size)
            if names not in (None, own):
                raise ValueError(f"{model_dir} orders its outputs {own}, the others {names}")
            names = own
            test = prepared.datasets(trainer.model.config.label2id, feature_extractor, data_args)["test"]
            values, targets = predict_values(trainer, test, "test")
        singles.append({m: v for m, v in compute_dimensional_metrics(values, targets, names).items()
                        if m in ("ccc", "mse")})
        total = values if total is None else total + values
    metrics, rows = score_values(total / len(model_dirs), targets, test, names)
    return {"test_fold": data_args.test_fold, "speakers": sorted({row["speaker"] for row in rows}),
            "models": len(model_dirs), "single_models": mean_std(singles, ("ccc", "mse")), "ensemble": metrics}, rows


def _cached_svm(data_args, folds, root, corpus):
    """The SVM baseline of every fold, computed once per cross-validation root and kept in baseline_svm.json."""
    cached = root / "baseline_svm.json"
    baseline = {int(k): v for k, v in json.loads(cached.read_text()).items()} if cached.is_file() else {}
    missing = [k for k in folds if k not in baseline]
    if missing:
        baseline.update(svm_on_folds(data_args, missing, root, workers=data_args.scan_workers, corpus=corpus))
        write_text_atomic(cached, json.dumps(baseline, indent=2))
    return baseline


def prepare_folds(data_args, root, corpus=None, task="emotion"):
    """Download or generate the corpus, scan it and decode it once, before folds that may run in parallel start:
    each then only reads the scan and audio caches (`task`: see `ser_hf.data.prepare.prepare_splits`).

    Returns:
        `PreparedData` of the first fold's split (every clip of the corpus is in one of its splits).

    Raises:
        UsageError: the corpus has no speakers, so no fold could be speaker-independent.
    """
    prepared = prepare_corpus(data_args, root, corpus=corpus, task=task)
    # EmoBox's folds are what they are (some put a speaker on both sides): run, and the report says so.
    if not prepared.speaker_independent and data_args.corpus != "emobox":
        raise UsageError("the corpus has no speaker column: folds would not be speaker-independent (add speakers)")
    return prepared


def run_crossval(config, overrides, data_args, folds, root, parallel=1, launcher=None, baseline=True, command=None,
                 probe_args=None, task="emotion"):
    """Train every unfinished fold, then write the cross-validation report.

    Args:
        config: the recipe YAML every fold runs.
        overrides: `--field value` arguments for every fold (without --fold / --output_dir).
        data_args: the parsed DataArguments of config + overrides.
        folds: the folds to hold out in turn.
        root: the cross-validation output dir; fold k trains in root/fold_k.
        parallel, launcher: see `ser_hf.experiments.crossval.run_folds`.
        baseline: also run the SVM on the same folds and report it beside each fold.
        command: the command line shown on the fold model cards.
        probe_args: (ModelArguments, SERTrainingArguments) of a `--probe true` cross-validation: the probe cache
            is filled here, once for every fold.
        task: the folds' `--task`; "dimensional" reports CCC per fold (and no SVM: it is a classifier).

    Returns:
        (report dict, {fold: status}), or (None, status) when no fold finished.

    Raises:
        UsageError: the corpus has no speakers, so no fold could be speaker-independent.
    """
    corpus, prepared = prepare_crossval(data_args, root, probe_args, task)
    if baseline and task != "dimensional":  # first: its table is there even when a fold crashes (cached for the report)
        _cached_svm(data_args, folds, root, corpus)
    status = run_folds(config, overrides, folds, root, parallel=parallel, launcher=launcher, command=command)
    report = pool_report(data_args, folds, root, corpus, prepared, status, baseline=baseline, task=task)
    return report, status


def prepare_crossval(data_args, root, probe_args=None, task="emotion", report_dir=None):
    """What a cross-validation prepares before its folds start: the corpus scanned and decoded, the probe cache.

    Args:
        data_args, probe_args, task: see `run_crossval`.
        root: the cross-validation output dir (created).
        report_dir: where the scan report goes (default `root`; a shared cross-validation's worker: its own dir).

    Returns:
        (corpus, `PreparedData` of the first fold)
    """
    root.mkdir(parents=True, exist_ok=True)
    report_dir = report_dir or root
    corpus = load_corpus(data_args, task)  # once: the splits here and the SVM's folds share it
    prepared = prepare_folds(data_args, report_dir, corpus, task=task)
    if probe_args is not None:  # every clip through the frozen encoder once, here: the folds only read the cache
        prefill_probe_cache(*probe_args, data_args, prepared.splits, prepared.label_names, prepared.load_audio,
                            report_dir)
    return corpus, prepared


def pool_report(data_args, folds, root, corpus, prepared, status, baseline=True, task="emotion"):
    """The report of the folds that finished: the SVM beside them, the test-fold ensemble, the report files.

    Args:
        data_args, folds, root, baseline, task: see `run_crossval`.
        corpus, prepared: `prepare_crossval(...)`.
        status: {fold: status} as `run_folds` returns it (kept in the report).

    Returns:
        The report dict, or None when no fold finished (nothing written).
    """
    if baseline and task == "dimensional":
        logger.info("--task dimensional: no SVM baseline (a classifier); each fold reports the MSE of predicting its "
                    "training mean instead")
        baseline = False
    svm = _cached_svm(data_args, folds, root, corpus) if baseline else None
    # The split each fold reports: its held-out fold, which is the test split under --held_out_split test.
    split = "test" if data_args.held_out_split == "test" else "validation"
    fold_results = collect_fold_results(root, folds, split=split)
    if not fold_results:
        return None
    report = summarize(fold_results, prepared.label_names, svm)
    report["status"], report["split"] = status, split
    report["emobox_form"] = data_args.corpus == "emobox" or data_args.fold_scheme == "emobox"
    if data_args.corpus == "emobox":
        report["held_out_note"] = _emobox_note(data_args, fold_results, corpus)
    elif split == "test":
        report["held_out_note"] = ("Each fold's scores are on its held-out fold as the test split, which took no part "
                                   "in training or selection; the next fold's speakers were the validation split that "
                                   "selected the checkpoint.")
    if data_args.test_fold is not None:
        report["ensemble"], rows = ensemble_on_test([fold_dir(root, k) for k in fold_results], data_args,
                                                    data_args.test_fold, root, task=task)
        if task == "dimensional":
            write_dimensional_predictions_csv(rows, root / "ensemble_predictions_test.csv", data_args.data_dir,
                                              prepared.label_names)
        else:
            write_predictions_csv(rows, root / "ensemble_predictions_test.csv", data_args.data_dir)
    pseudo = pseudo_crossval_summary({k: fold_dir(root, k) for k in fold_results})
    if pseudo is not None:  # --unlabeled_dir / --pseudo_pool_fold: each fold's round 0 beside its final round
        report["pseudo_labels"] = pseudo
        write_text_atomic(root / "pseudo_crossval.md", pseudo_crossval_markdown(pseudo) + "\n")
    write_crossval_report(root, report)
    return report


def _emobox_note(data_args, folds, corpus):
    """What EmoBox's folds held out and selected on, and which of them are not speaker-independent."""
    note = ("Each fold is scored on EmoBox's test file, which took no part in training or selection; its valid file "
            "or, without one, a tenth of its training speakers selected the checkpoint.")
    leaking = [k for k in folds
               if not prepare_splits(dataclasses.replace(data_args, fold=k), corpus).speaker_independent]
    if leaking:
        note += (f" NOT speaker-independent: EmoBox's fold{'s' if len(leaking) > 1 else ''} "
                 f"{', '.join(f'fold_{k + 1}' for k in leaking)} put the same (or unknown) speakers in training and "
                 "test, so these scores may be optimistic.")
    return note


def validation_folds(text, data_args):
    """The folds to hold out in turn: `--folds 0,2` or, by default, every fold but the test fold and the
    pseudo-label pool fold (neither is ever a validation fold).

    Raises:
        UsageError: a fold out of range, a repeated fold, or the test or pool fold.
    """
    held = {data_args.test_fold, data_args.pseudo_pool_fold} - {None}
    try:
        folds = [int(k) for k in text.split(",")] if text else [k for k in range(data_args.n_folds) if k not in held]
    except ValueError:
        folds = []
    if not folds or not all(0 <= k < data_args.n_folds and k not in held for k in folds) or len(set(folds)) < len(folds):
        excluded = [f"the {name} {k}" for name, k in (("test fold", data_args.test_fold),
                                                       ("pseudo-label pool fold", data_args.pseudo_pool_fold))
                    if k is not None]
        raise UsageError(f"--folds {text}: distinct folds in 0..{data_args.n_folds - 1}"
                         + (f", without {' and '.join(excluded)}" if excluded else ""))
    return folds


def cross_validate(config, overrides, folds=None, parallel=1, launcher=None, baseline=True, command=None):
    """`ser-hf cv`: check every setting, then train every unfinished fold and write the report.

    Args:
        config: the recipe YAML.
        overrides: `--field value` arguments for every fold; `--output_dir` is the cross-validation's root
            (default: the config's output_dir + "_cv").
        folds: comma-separated folds (None: see `validation_folds`).
        parallel, launcher, baseline, command: see `run_crossval`.

    Returns:
        (report or None, {fold: status}, root)

    Raises:
        UsageError: an option that does not apply (--fold, --train_manifest), bad folds, or any recipe mistake,
            found before the first fold starts.
    """
    model_args, data_args, training_args, root, chosen, overrides = parse_crossval(config, overrides, folds)
    report, status = run_crossval(config, overrides, data_args, chosen, root, parallel=parallel, launcher=launcher,
                                  baseline=baseline, command=command,
                                  probe_args=(model_args, training_args) if training_args.probe else None,
                                  task=training_args.task)
    return report, status, root


def parse_crossval(config, overrides, folds=None):
    """Every setting of a cross-validation checked before hours of work (see `cross_validate`).

    Returns:
        (model_args, data_args with the first chosen fold, training_args, root, chosen folds, overrides without
         --output_dir)
    """
    overrides = list(overrides)
    for name in ("fold", "train_manifest"):
        if pop_option(list(overrides), name) is not None:
            raise UsageError(f"--{name} does not apply to cross-validation: every fold is held out in turn (use "
                             "--folds)")
    root = pop_option(overrides, "output_dir")
    # Every field is checked before hours of work; the config's own fold plays no part here.
    model_args, data_args, training_args = parse_config(config, overrides, single_fold=False)
    data_args = resolve_data_args(data_args)
    if training_args.task == "dimensional":
        check_dimensional_data(data_args)
    if data_args.train_manifest:
        raise UsageError("the config sets train_manifest; cross-validation holds out each speaker fold in turn")
    root = Path(root or f"{training_args.output_dir.rstrip('/')}_cv")
    chosen = validation_folds(folds, data_args)
    data_args = dataclasses.replace(data_args, fold=chosen[0])
    for k in chosen:  # --probe / --init_head_from checked now, for every fold (a fold starts from its own probe)
        head_model_args(model_args, dataclasses.replace(data_args, fold=k), training_args)
    return model_args, data_args, training_args, root, chosen, overrides

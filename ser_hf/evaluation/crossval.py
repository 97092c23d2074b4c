"""Speaker-independent k-fold cross-validation: one fine-tuning run per fold, then one table.

UA on one held-out fold of 4 actors differs from the next fold's by several points (the demo model: 48.8 to
71.1 % over its 6 folds), so a number worth comparing is a mean +- std over every speaker fold. Each fold is an ordinary `finetune.py` run
in its own output dir (`<root>/fold_<k>`), started as a subprocess: a crash, an out-of-memory kill or a
pre-emption loses one fold at most, and a rerun skips the folds that finished.
"""

import csv
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

import numpy as np

from ser_hf.data.prepare import audio_loader, build_datasets, exclude_bad_audio, prepare_splits
from ser_hf.evaluation.calibration import calibration_from_rows, ece_from_bins, pool_bins
from ser_hf.evaluation.metrics import compute_ser_metrics, compute_ser_metrics_from_confusion
from ser_hf.evaluation.prediction import RESULTS_FILE, load_trained, predict_probabilities, score_probabilities
from ser_hf.evaluation.pseudo_labels import has_rounds_to_resume
from ser_hf.training.checkpoints import latest_intact_checkpoint
from ser_hf.training.output_dir import finished_run

logger = logging.getLogger(__name__)

METRICS = ("ua", "wa", "macro_f1")
# Scores a fold may carry beside its emotion scores, summarised the same way over folds: the intensity head of
# `--task multitask`, and an emotion x intensity model read as bare emotions (each has its own label_names).
SIDE_SCORES = ("intensity", "emotions")
CV_RESULTS_FILE = "crossval_results.json"
CV_TABLE_FILE = "crossval_results.md"


def fold_dir(root, fold):
    """The output dir of fold `fold` under the cross-validation root."""
    return Path(root) / f"fold_{fold}"


def fold_finished(path):
    """A fold is done when its final model and its results file are both there (results are written last)."""
    return finished_run(path) and (Path(path) / RESULTS_FILE).is_file()


def mean_std(rows, metrics=METRICS):
    """{metric: {"mean", "std"}} over rows (population std, as over a fixed set of folds)."""
    return {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))}
            for m in metrics}


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
        {fold: "finished" | "skipped" | "failed (exit N, see LOG)"}.
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
                f"failed (exit {code}, see {log_path})"
            logger.info("fold %d: %s", k, status[k])

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(run, todo))
    return {k: status[k] for k in folds}


def collect_fold_results(root, folds, split="validation"):
    """Each finished fold's metrics on `split` (from its ser_results.json), with the speakers it held out and its ECE."""
    results = {}
    for k in folds:
        path = fold_dir(root, k)
        if not fold_finished(path):
            continue
        metrics = json.loads((path / RESULTS_FILE).read_text())[split]
        with open(path / f"predictions_{split}.csv") as handle:
            rows = list(csv.DictReader(handle))
        speakers = sorted({row["speaker"] for row in rows})
        # From the per-clip scores (the pipeline's), so folds written before ECE was recorded get it too.
        calibration = calibration_from_rows(rows)
        results[k] = {**metrics, "speakers": speakers, "ece": calibration.pop("ece"), "calibration": calibration}
    return results


def summarize(fold_results, label_names, baseline=None):
    """Per-fold rows, mean +- std, and the pooled confusion matrix of all held-out clips.

    Args:
        fold_results: {fold: SER metrics (ua, wa, macro_f1, confusion_matrix, num_examples) + speakers, and
            optionally `ece` and `calibration` (reliability bins) from `collect_fold_results`}.
        label_names: label names in id order.
        baseline: optional {fold: SVM metrics on the same fold} to report beside each fold.

    Returns:
        dict with `folds` (one row per fold), `summary` (mean/std per metric), `pooled` (metrics of the summed
        confusion matrix: every clip scored once by the model that never saw its speaker), the same for
        `baseline` when given, `calibration` (ECE mean/std over folds, pooled ECE and bins) when every fold
        has it, and `intensity` / `emotions` (`SIDE_SCORES`: folds, summary, pooled) when every fold has them.
    """
    folds = sorted(fold_results)
    rows = [{"fold": k, "speakers": fold_results[k].get("speakers", []),
             "num_examples": int(fold_results[k]["num_examples"]),
             **{m: float(fold_results[k][m]) for m in METRICS}} for k in folds]
    pooled_cm = np.sum([fold_results[k]["confusion_matrix"] for k in folds], axis=0).astype(int).tolist()
    report = {"labels": list(label_names), "folds": rows, "summary": mean_std(rows),
              "pooled": compute_ser_metrics_from_confusion(pooled_cm, label_names)}
    if all("calibration" in fold_results[k] for k in folds):  # ECE per fold, mean +- std, and pooled bins
        for row in rows:
            row["ece"] = float(fold_results[row["fold"]]["ece"])
        bins = pool_bins([fold_results[k]["calibration"]["bins"] for k in folds])
        report["calibration"] = {**mean_std(rows, ("ece",))["ece"], "pooled_ece": ece_from_bins(bins), "bins": bins}
    for key in SIDE_SCORES:
        if all(fold_results[k].get(key) for k in folds):
            report[key] = _summarize_side_scores({k: fold_results[k][key] for k in folds})
    if baseline:
        shared = [k for k in folds if k in baseline]
        base_rows = [{"fold": k, **{m: float(baseline[k][m]) for m in METRICS}} for k in shared]
        report["baseline"] = {"name": "SVM on MFCC + prosody statistics", "folds": base_rows,
                              "summary": mean_std(base_rows) if base_rows else {}}
    return report


def _summarize_side_scores(per_fold):
    """{fold: metrics with label_names} -> per-fold rows, mean +- std and the pooled metrics of their clips."""
    names = next(iter(per_fold.values()))["label_names"]
    rows = [{"fold": k, "num_examples": int(m["num_examples"]), **{name: float(m[name]) for name in METRICS}}
            for k, m in sorted(per_fold.items())]
    pooled_cm = np.sum([m["confusion_matrix"] for m in per_fold.values()], axis=0).astype(int).tolist()
    return {"labels": list(names), "folds": rows, "summary": mean_std(rows),
            "pooled": compute_ser_metrics_from_confusion(pooled_cm, names)}


def ensemble_on_test(model_dirs, data_args, test_fold, report_dir, batch_size=16):
    """Average the fold models' class probabilities on the test fold that none of them trained or selected on.

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
    splits = prepare_splits(dataclasses.replace(data_args, fold=other, test_fold=test_fold)).splits
    splits, _ = exclude_bad_audio({"test": splits["test"]}, data_args, report_dir)
    load_audio = audio_loader(splits, data_args, report_dir)
    total, singles, label_names = None, [], None
    for model_dir in model_dirs:
        with tempfile.TemporaryDirectory() as scratch:
            trainer, feature_extractor, names = load_trained(model_dir, scratch, batch_size)
            if label_names not in (None, names):
                raise ValueError(f"{model_dir} orders its labels {names}, the others {label_names}")
            label_names = names
            test = build_datasets(splits, trainer.model.config.label2id, feature_extractor, data_args, load_audio)["test"]
            probs, label_ids = predict_probabilities(trainer, test, "test")
        singles.append({m: float(v) for m, v in compute_ser_metrics(probs.argmax(-1), label_ids, label_names).items()
                        if m in METRICS})
        total = probs if total is None else total + probs
    metrics, rows = score_probabilities(total / len(model_dirs), label_ids, test, label_names)
    speakers = sorted({row["speaker"] for row in rows})
    return {"test_fold": test_fold, "speakers": speakers, "models": len(model_dirs),
            "single_models": mean_std(singles), "ensemble": metrics}, rows

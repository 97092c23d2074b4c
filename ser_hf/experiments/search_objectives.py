"""What one trial of the hyperparameter search runs: its config on the chosen speaker folds, scored by mean UA.

- `FineTuneObjective`: each fold is an ordinary `ser-hf train` run started as a subprocess
  (`ser_hf.experiments.crossval.run_folds`) in ROOT/trial_<k>/fold_<j>, so a trial is a cross-validation of its
  config and the best trial's folds are ready-made fold models.
- `ProbeObjective`: a `--probe true` trial trains only the head, on the per-layer means of the frozen encoder
  cached once for the whole search (`prepare_probe_folds`), in-process: seconds a fold.

The objective is the mean validation UA over the folds: the test fold (`--test_fold`) takes no part in a trial's
training, selection or score. After each fold (or each group of `parallel` folds) the running mean is reported to
the pruner, which stops a trial that falls below earlier trials at the same point: folds run in the same order
in every trial, so step k compares the same folds.
"""

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch
from transformers import set_seed

from ser_hf.config import parse_config, write_config
from ser_hf.data.prepare import audio_loader, load_corpus, prepare_corpus
from ser_hf.evaluation.fold_summary import collect_fold_results
from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.experiments.crossval import run_folds
from ser_hf.experiments.search_space import TRIAL_CONFIG, suggest, trial_config
from ser_hf.experiments.shared_study import remove_lost_locks, worker_id
from ser_hf.labels import label_maps
from ser_hf.models.encoders import build_model
from ser_hf.models.probe_features import probe_cache
from ser_hf.models.probe_head import ProbeHead
from ser_hf.storage import write_text_atomic
from ser_hf.training.imbalance import class_weights
from ser_hf.training.output_dir import LOCK_NAME
from ser_hf.training.probe import probe_model_args, probe_settings, train_probe_head

logger = logging.getLogger(__name__)


def _cpu_seconds():
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


ATTEMPTS_DIR = "attempts"  # run_dir/attempts/trial_<k>.json: who ran which try of the run dir, and how it ended


def _record_attempt(run_dir, trial, state, started):
    """run_dir/attempts/trial_<k>.json: this try's worker, start, end and state (one file per try, its own)."""
    write_text_atomic(Path(run_dir) / ATTEMPTS_DIR / f"trial_{trial.number}.json", json.dumps({
        "trial": trial.number, "worker": worker_id(), "state": state, "started": started,
        "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z") if state != "RUNNING" else None}, indent=2))


class TrialFailed(RuntimeError):
    """A fold of the trial did not finish (it crashed or diverged); the search goes on with the next trial."""


class _FoldObjective:
    """A trial: write its config, score it fold by fold, report the running mean, prune when told to.

    Args:
        root: the search's output dir; trial k works in root/trial_k (a retried trial in its first try's dir).
        base: the recipe's values (`ser_hf.experiments.search_space.config_values`).
        params: the search space (`parse_search_space`).
        folds: the validation folds, in the order every trial runs them.
        group: folds scored between two reports to the pruner.
    """

    def __init__(self, root, base, params, folds, group=1):
        self.root, self.base, self.params, self.folds = Path(root), base, params, list(folds)
        self.group = max(1, group)

    def __call__(self, trial):
        values = suggest(trial, self.params)
        run_dir = self.root / trial.user_attrs.get("run_dir", f"trial_{trial.number}")
        trial.set_user_attr("run_dir", run_dir.name)
        header = (f"Trial {trial.number} of the search in {self.root}: the recipe with "
                  + ", ".join(f"{k}={v!r}" for k, v in values.items()))
        config = write_config(trial_config(self.base, values, output_dir=run_dir / "model", fold=self.folds[0]), run_dir / TRIAL_CONFIG,
                              header)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _record_attempt(run_dir, trial, "RUNNING", started)
        self.before_retry(trial, run_dir)
        state = "FAIL"
        try:
            value = self._run(trial, config, run_dir)
            state = "COMPLETE"
            return value
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except TrialFailed as err:
            trial.set_user_attr("error", str(err))
            raise
        except KeyboardInterrupt:  # Ctrl-C: optuna marks the trial FAIL; the command queues it again
            trial.set_user_attr("interrupted", True)
            raise
        finally:
            _record_attempt(run_dir, trial, state, started)

    def before_retry(self, trial, run_dir):
        """What a retried trial clears first in its run dir (nothing by default)."""

    def _run(self, trial, config, run_dir):
        start, cpu, scores = time.perf_counter(), _cpu_seconds(), {}
        for i in range(0, len(self.folds), self.group):
            scores.update(self.score_folds(config, self.folds[i:i + self.group], run_dir))
            mean = float(np.mean(list(scores.values())))
            trial.set_user_attr("fold_ua", {str(k): v for k, v in scores.items()})
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
            # CPU time of this process and its finished fold processes: on a shared machine it tells what a
            # trial costs without the other load.
            trial.set_user_attr("cpu_seconds", round(_cpu_seconds() - cpu, 2))
            trial.report(mean, step=len(scores) - 1)
            if len(scores) < len(self.folds) and trial.should_prune():
                logger.info("Trial %d pruned after %d fold(s): mean UA %.4f", trial.number, len(scores), mean)
                raise optuna.TrialPruned(f"mean UA {mean:.4f} after folds {sorted(scores)}")
        logger.info("Trial %d: mean validation UA %.4f over folds %s (%s)", trial.number, mean, self.folds,
                    ", ".join(f"{k}: {v:.4f}" for k, v in scores.items()))
        return mean

    def score_folds(self, config, folds, run_dir):
        """{fold: validation UA} of the trial's config on `folds`."""
        raise NotImplementedError


class FineTuneObjective(_FoldObjective):
    """Fine-tuning trials: each fold an ordinary training run in its own process (see the module docstring).

    Args:
        parallel: folds trained at once (`run_folds`); the pruner hears after each group of this many.
        launcher: how each fold starts (`run_folds`).
        command: the search command, shown on each fold's model card.
    """

    def __init__(self, root, base, params, folds, parallel=1, launcher=None, command=None):
        super().__init__(root, base, params, folds, group=parallel)
        self.parallel, self.launcher, self.command = parallel, launcher, command

    def before_retry(self, trial, run_dir):
        """A retry of a shared study's trial whose worker died on another host: that host's fold locks go.

        The fold processes held them; they died with their worker (`shared_study.fold_launcher`) or with their
        machine, and a lock written on another host cannot be checked from here (`OutputDirLock` refuses it), so
        the interrupted fold could not resume. A lock of this host is left to `OutputDirLock`, which checks its pid.
        """
        remove_lost_locks(trial.user_attrs.get("lost_worker"), Path(run_dir).glob("fold_*"), LOCK_NAME)

    def score_folds(self, config, folds, run_dir):
        status = run_folds(config, [], folds, run_dir, parallel=self.parallel, launcher=self.launcher,
                           command=self.command)
        results = collect_fold_results(run_dir, folds)
        missing = [k for k in folds if k not in results]
        if missing:
            raise TrialFailed(f"fold(s) {missing} did not finish: {', '.join(status[k] for k in missing)}")
        return {k: float(results[k]["ua"]) for k in folds}


@dataclass
class ProbeFolds:
    """The cached encoder features of a probe search, split by fold.

    Attributes:
        model: the classifier whose head every trial starts from (as `ser-hf train --probe true` builds it).
        label_names: label names in id order.
        folds: {fold: ((train means, train labels), (validation means, validation labels))}.
        cache: {"dir", "clips", "computed", "seconds"}.
    """

    model: torch.nn.Module
    label_names: list
    folds: dict
    cache: dict


def prepare_probe_folds(model_args, data_args, training_args, folds, report_dir):
    """Scan the corpus, run every clip through the frozen encoder once (the probe cache) and split the means by fold.

    The encoder and the head's initial values are built as `ser-hf train --probe true` builds them (same seed),
    and each fold's rows come in the order that run reads them, so a trial's fold is the run the best config
    gives (up to the float rounding between cached means and the full forward pass).

    Args:
        model_args, data_args, training_args: the parsed base config.
        folds: the validation folds; `data_args.test_fold` is held out of all of them and never loaded.
        report_dir: where the audio scan report goes (the search's output dir).

    Returns:
        `ProbeFolds`.
    """
    corpus = load_corpus(data_args)
    rows = {}
    label_names = None
    for k in folds:
        prepared = prepare_corpus(_with_fold(data_args, k), report_dir, corpus=corpus, keep=("train", "validation"),
                                  decode=False)  # never the test fold; decoded once below, for every fold
        label_names, splits = prepared.label_names, prepared.splits
        rows[k] = {"train": splits["train"][:data_args.max_train_samples or None],
                   "validation": splits["validation"][:data_args.max_eval_samples or None]}
    paths = list(dict.fromkeys(row["path"] for k in folds for split in rows[k].values() for row in split))
    load_audio = audio_loader({"all": [{"path": p} for p in paths]}, data_args, report_dir)
    set_seed(training_args.seed)
    model, feature_extractor = build_model(probe_model_args(model_args), *label_maps(label_names))
    model.to(training_args.device)
    cache = probe_cache(model_args, model, feature_extractor, data_args, report_dir)
    computed, seconds = cache.fill(paths, model, feature_extractor, load_audio)
    logger.info("Probe cache %s: %d of %d clips computed now (%.1f s)", cache.cache_dir, computed, len(paths), seconds)
    index = {p: i for i, p in enumerate(paths)}
    means = cache.stack(paths)
    label2id = {name: i for i, name in enumerate(label_names)}

    def features(split_rows):
        picked = [index[row["path"]] for row in split_rows]
        return means[picked], torch.tensor([label2id[row["label"]] for row in split_rows], dtype=torch.long)

    by_fold = {k: (features(rows[k]["train"]), features(rows[k]["validation"])) for k in folds}
    return ProbeFolds(model.cpu(), label_names, by_fold,
                      {"dir": str(cache.cache_dir), "clips": len(paths), "computed": computed,
                       "seconds": round(seconds, 2)})


def _with_fold(data_args, fold):
    return dataclasses.replace(data_args, fold=fold)


class ProbeObjective(_FoldObjective):
    """Probe trials: the head trained on each fold's cached means in this process (see the module docstring).

    Args:
        probe_folds: `prepare_probe_folds(...)`.
    """

    def __init__(self, root, base, params, folds, probe_folds):
        super().__init__(root, base, params, folds)
        self.data = probe_folds
        self.compute_metrics = make_compute_metrics(probe_folds.label_names)

    def score_folds(self, config, folds, run_dir):
        _, _, training_args = parse_config(config, single_fold=False)
        scores = {}
        for k in folds:
            train, validation = self.data.folds[k]
            weights = class_weights(train[1].tolist(), len(self.data.label_names), training_args.class_weighting)
            head = ProbeHead.from_model(self.data.model)
            result = train_probe_head(head, train, validation, probe_settings(training_args, weights),
                                      self.compute_metrics)
            scores[k] = float(result.best_metrics.get("eval_ua", float("nan")))
        return scores

"""Linear probe: train an audio classifier's own head on cached encoder features, and start fine-tuning from it.

The head (`ProbeHead`: softmax layer weights, projector, classifier) is the model's, copied with its initial
values, and is trained on the per-layer time means of `ser_hf.models.probe_features`: the same function of a
clip as the full model's forward with a frozen encoder (see that module), at a few milliseconds an epoch
instead of an encoder pass over every clip. `write_head` puts it back into the model, which is then saved and
evaluated like any fine-tuned one. `load_head` starts a fine-tuning run from a probe's head (LP-FT).
"""

import copy
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoConfig, EvalPrediction, set_seed

from ser_hf.errors import UsageError
from ser_hf.labels import label_maps
from ser_hf.models.encoders import build_model
from ser_hf.models.probe_features import HEAD_PARAMETERS, one_cpu_thread, probe_cache
from ser_hf.models.probe_head import ProbeHead, write_head

logger = logging.getLogger(__name__)

PROBE_RESULTS_FILE = "probe_results.json"


def probe_model_args(model_args):
    """The ModelArguments of a probe: the whole encoder frozen, the head weighing every hidden state."""
    return dataclasses.replace(model_args, freeze_encoder=True, use_weighted_layer_sum=True)


def check_probe_args(model_args, data_args, training_args):
    """Refuse, in the first second, settings a probe cannot honour.

    Raises:
        UsageError: augmentation (the encoder runs once per clip, on the clip as it is), a head to start from
            (a probe trains its own), or several processes (the head trains in seconds in one).
    """
    if not training_args.probe:
        return
    if data_args.augmentation != "none":
        raise UsageError(f"--probe runs each clip through the encoder once and caches it, so --augmentation "
                         f"{data_args.augmentation} cannot apply: drop it, or fine-tune without --probe")
    if model_args.init_head_from:
        raise UsageError("--probe trains a head from the model's own initialisation; --init_head_from starts a "
                         "fine-tuning run from a probe's head: use one or the other")
    if training_args.world_size > 1:
        raise UsageError("--probe runs in one process (the head trains in seconds): launch it without "
                         "accelerate's multiple processes")


@dataclass
class ProbeSettings:
    """How the head is trained (SERTrainingArguments' probe_* fields; see `probe_settings`)."""

    epochs: int = 300
    learning_rate: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    patience: int | None = 50
    metric: str = "ua"
    greater_is_better: bool = True
    seed: int = 42
    class_weights: torch.Tensor | None = field(default=None, repr=False)


def probe_settings(training_args, class_weights=None):
    """ProbeSettings from SERTrainingArguments: probe_* fields, weight_decay, metric_for_best_model, seed."""
    metric = (training_args.metric_for_best_model or "loss").removeprefix("eval_")
    greater = training_args.greater_is_better
    return ProbeSettings(
        epochs=training_args.probe_epochs, learning_rate=training_args.probe_learning_rate,
        batch_size=training_args.probe_batch_size, weight_decay=training_args.weight_decay,
        patience=training_args.probe_patience or None, metric=metric,
        greater_is_better=metric != "loss" if greater is None else bool(greater), seed=training_args.seed,
        class_weights=class_weights)


@dataclass
class ProbeResult:
    """A trained head and how it got there.

    Attributes:
        head: the head of the best epoch.
        initial_head: the head it started from (the model's own initialisation).
        best_epoch: that epoch (1-based).
        best_metrics: the validation metrics of that epoch (eval_ prefixed, as the Trainer logs them).
        epochs_run: epochs trained before early stopping (or all).
        log_history: Trainer-style entries per epoch (`step` = epoch): training loss, then evaluation metrics.
        seconds_per_epoch: wall time of one epoch's training steps, averaged (evaluation not included).
    """

    head: ProbeHead
    initial_head: ProbeHead
    best_epoch: int
    best_metrics: dict
    epochs_run: int
    log_history: list
    seconds_per_epoch: float


def _improved(value, best, greater):
    return best is None or (value > best if greater else value < best)


def train_probe_head(head, train, validation, settings, compute_metrics):
    """Train the head with AdamW on mini-batches of means; keep the epoch with the best validation metric.

    Seeded (`settings.seed` shuffles the batches; the head starts as given) and deterministic on one machine.
    Runs on one CPU thread: thousands of tiny matrix products, which a second thread only slows down
    (`one_cpu_thread`).

    Args:
        head: a `ProbeHead` (trained in place; its best state is loaded at the end).
        train: (means float32 [clips, layers, hidden], label ids [clips]).
        validation: the same for the split that selects the epoch.
        settings: `ProbeSettings`.
        compute_metrics: a Trainer `compute_metrics` (EvalPrediction -> {metric: float}), e.g.
            `ser_hf.evaluation.metrics.make_compute_metrics(label_names)`.

    Returns:
        `ProbeResult`.
    """
    with one_cpu_thread():
        return _train(head, train, validation, settings, compute_metrics)


def _train(head, train, validation, settings, compute_metrics):
    initial = ProbeHead.from_model(head)
    x, y = (torch.as_tensor(a) for a in train)
    xv, yv = (torch.as_tensor(a) for a in validation)
    generator = torch.Generator().manual_seed(settings.seed)
    # fused: one kernel per step for all parameters instead of a dozen small ones (1.5x faster an epoch here).
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  fused=True)
    best, best_state, best_epoch, best_metrics, waited, history, seconds = None, None, 0, {}, 0, [], []
    epoch = 0
    for epoch in range(1, settings.epochs + 1):
        start, total = time.perf_counter(), 0.0
        head.train()
        for batch in torch.randperm(len(y), generator=generator).split(settings.batch_size):
            loss = F.cross_entropy(head(x[batch]), y[batch], weight=settings.class_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        seconds.append(time.perf_counter() - start)
        head.eval()
        with torch.no_grad():
            logits = head(xv)
        metrics = {"eval_loss": F.cross_entropy(logits, yv, weight=settings.class_weights).item(),
                   **{f"eval_{k}": v for k, v in compute_metrics(EvalPrediction(logits.numpy(), yv.numpy())).items()}}
        history += [{"epoch": epoch, "step": epoch, "loss": total / len(y), "learning_rate": settings.learning_rate},
                    {"epoch": epoch, "step": epoch, **metrics}]
        value = metrics[f"eval_{settings.metric}"]
        if math.isfinite(value) and _improved(value, best, settings.greater_is_better):
            best, best_epoch, best_metrics, waited = value, epoch, metrics, 0
            best_state = copy.deepcopy(head.state_dict())
        else:
            waited += 1
            if settings.patience and waited >= settings.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    return ProbeResult(head, initial, best_epoch, best_metrics, epoch, history, sum(seconds) / max(len(seconds), 1))


@dataclass
class FittedProbe:
    """A probe trained on a run's splits: the result, the cached means it trained on, and what the cache cost.

    Attributes:
        result: `ProbeResult` (its head is already written into the model).
        settings: `ProbeSettings`.
        features: {split: means [clips, layers + 1, hidden_size]}, in the datasets' order.
        labels: {split: label ids}.
        cache: {"dir", "encoder" (identity), "clips", "computed", "seconds"}: this run's use of the cache.
        head_seconds: wall time of the head's training.
        layers: rows of the per-layer analysis (filled by the command when asked for).
    """

    result: ProbeResult
    settings: ProbeSettings
    features: dict
    labels: dict
    cache: dict
    head_seconds: float
    layers: list | None = None

    def summary(self):
        """The JSON of probe_results.json (without the per-clip arrays)."""
        settings = {k: v for k, v in dataclasses.asdict(self.settings).items() if k != "class_weights"}
        return {
            "encoder": self.cache["encoder"], "cache": {k: v for k, v in self.cache.items() if k != "encoder"},
            "settings": {**settings, "class_weighting": self.settings.class_weights is not None},
            "best_epoch": self.result.best_epoch, "epochs_run": self.result.epochs_run,
            "best_validation_metrics": self.result.best_metrics,
            "seconds_per_epoch": self.result.seconds_per_epoch, "head_training_seconds": self.head_seconds,
            "clips": {split: len(y) for split, y in self.labels.items()}, "layers": self.layers,
        }


def fit_probe(model, feature_extractor, cache, datasets, load_audio, settings, compute_metrics):
    """Fill the cache for every clip of the datasets, train the model's head on the means, write it into the model.

    Args:
        model: the classifier built with `probe_model_args` (frozen encoder, weighted layer sum), on its device.
        feature_extractor: its feature extractor.
        cache: `LayerMeansCache` of this encoder (`probe_cache`).
        datasets: {split: datasets.Dataset with path and label columns} ("train", "validation"[, "test"]).
        load_audio: path -> 16 kHz clip.
        settings: `ProbeSettings`.
        compute_metrics: Trainer-style metric function (selects the epoch).

    Returns:
        `FittedProbe`.
    """
    columns = {split: data.with_format(None).select_columns(["path", "label"]).to_dict()
               for split, data in datasets.items()}
    paths = [p for c in columns.values() for p in c["path"]]
    computed, seconds = cache.fill(paths, model, feature_extractor, load_audio)
    logger.info("Probe cache %s: %d of %d clips computed now (%.1f s), the others reused", cache.cache_dir,
                computed, len(set(paths)), seconds)
    features = {split: cache.stack(c["path"]) for split, c in columns.items()}
    labels = {split: torch.tensor(c["label"], dtype=torch.long) for split, c in columns.items()}
    start = time.perf_counter()
    result = train_probe_head(ProbeHead.from_model(model), (features["train"], labels["train"]),
                              (features["validation"], labels["validation"]), settings, compute_metrics)
    head_seconds = time.perf_counter() - start
    write_head(result.head, model)
    best = ", ".join(f"{k.removeprefix('eval_')} {v:.4f}" for k, v in result.best_metrics.items()
                     if k.removeprefix("eval_") in ("loss", "ua", "wa", "macro_f1"))
    logger.info("Probe head: best epoch %d of %d run (validation %s); %.1f ms per epoch, %.1f s in all",
                result.best_epoch, result.epochs_run, best, 1000 * result.seconds_per_epoch, head_seconds)
    cache_info = {"dir": str(cache.cache_dir), "encoder": cache.identity, "clips": len(set(paths)),
                  "computed": computed, "seconds": round(seconds, 3)}
    return FittedProbe(result, settings, features, labels, cache_info, head_seconds)


def prefill_probe_cache(model_args, training_args, data_args, splits, label_names, load_audio, report_dir):
    """Fill the probe cache for every clip of `splits` before the runs that read it start.

    Cross-validation calls it once for all folds, so that folds running in parallel find every clip cached. The
    encoder is built as each fold's run builds it (seeded the same way: a random encoder is what the seed makes
    it; its tensors are part of the cache's key, so a mismatch would cost time, never give wrong features).

    Returns:
        (clips computed, seconds).
    """
    model_args = probe_model_args(model_args)
    set_seed(training_args.seed)
    model, feature_extractor = build_model(model_args, *label_maps(label_names))
    model.to(training_args.device)
    cache = probe_cache(model_args, model, feature_extractor, data_args, report_dir)
    computed, seconds = cache.fill([row["path"] for rows in splits.values() for row in rows], model,
                                   feature_extractor, load_audio)
    logger.info("Probe cache %s: %d clips computed (%.1f s) for every fold", cache.cache_dir, computed, seconds)
    return computed, seconds


# ---- LP-FT: a fine-tuning run that starts from a probe's head ----

def _run_config(model_args):
    """The config the run will build, without loading any weights."""
    overrides = dict(model_args.model_config_overrides)
    if model_args.model_name_or_path is None:
        return AutoConfig.for_model(model_args.model_type, **overrides)
    return AutoConfig.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                      trust_remote_code=model_args.trust_remote_code, **overrides)


def check_head_source(model_args):
    """Refuse `--init_head_from DIR` unless DIR holds a head that fits this run's encoder (the labels are checked
    by `load_head`, once the corpus is loaded).

    Raises:
        UsageError: DIR has no model, no weighted-layer-sum head, or another encoder architecture or size.
    """
    source = Path(model_args.init_head_from)
    if not (source / "config.json").is_file() or not (source / "model.safetensors").is_file():
        raise UsageError(f"--init_head_from {source}: no config.json and model.safetensors there (give a "
                         "`--probe true` output dir)")
    theirs, ours = AutoConfig.from_pretrained(source), _run_config(model_args)
    if not getattr(theirs, "use_weighted_layer_sum", False):
        raise UsageError(f"--init_head_from {source}: its head does not weigh the hidden states "
                         "(use_weighted_layer_sum false); give a `--probe true` output dir")
    for name in ("model_type", "hidden_size", "num_hidden_layers"):
        if getattr(theirs, name, None) != getattr(ours, name, None):
            raise UsageError(f"--init_head_from {source}: its encoder has {name} {getattr(theirs, name, None)}, "
                             f"this run's {getattr(ours, name, None)}: the head fits only the encoder it was "
                             "trained on")


# A probe's head has heard its training speakers: it may start only a run with the same split.
_SPLIT_FIELDS = ("corpus", "manifest", "train_manifest", "validation_manifest", "test_manifest", "n_folds", "fold",
                 "test_fold", "fold_seed", "fold_scheme")


def _head_source(directory, data_args):
    """The probe output dir for this run's fold (DIR itself, or DIR/fold_K of a probe cross-validation).

    Raises:
        UsageError: the probe was trained on another split (its head has heard this run's held-out speakers).
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file() and (directory / f"fold_{data_args.fold}").is_dir():
        directory = directory / f"fold_{data_args.fold}"
    saved = directory / "data_args.json"
    if saved.is_file():
        theirs = json.loads(saved.read_text())
        differ = [name for name in _SPLIT_FIELDS if theirs.get(name) != getattr(data_args, name)]
        if differ:
            raise UsageError(
                f"--init_head_from {directory}: its probe was trained with "
                f"{', '.join(f'{n} {theirs.get(n)}' for n in differ)}, this run has "
                f"{', '.join(f'{n} {getattr(data_args, n)}' for n in differ)}: its head has heard speakers this run "
                "holds out. Give a probe of the same split (for cross-validation: the probe cross-validation's "
                "output dir, whose fold_K/ starts fold K)")
    return directory


def head_model_args(model_args, data_args, training_args):
    """The ModelArguments of a run with `--probe` or `--init_head_from`, checked before any data work.

    A probe freezes the whole encoder and weighs every hidden state; an LP-FT run weighs every hidden state with
    the probe's projector size, so that the probe's head fits, and starts from the probe of its own split
    (`--init_head_from` a probe cross-validation's dir: its fold_K/ for fold K).

    Raises:
        UsageError: see `check_probe_args`, `check_head_source`, and a probe of another split.
    """
    check_probe_args(model_args, data_args, training_args)
    if training_args.probe:
        return probe_model_args(model_args)
    if not model_args.init_head_from:
        return model_args
    model_args = dataclasses.replace(model_args, init_head_from=str(_head_source(model_args.init_head_from,
                                                                                   data_args)))
    check_head_source(model_args)
    theirs = AutoConfig.from_pretrained(model_args.init_head_from)
    overrides = {**model_args.model_config_overrides, "classifier_proj_size": theirs.classifier_proj_size}
    if not model_args.use_weighted_layer_sum:
        logger.info("--init_head_from: use_weighted_layer_sum on (the probe's head weighs every hidden state)")
    return dataclasses.replace(model_args, use_weighted_layer_sum=True, model_config_overrides=overrides)


@torch.no_grad()
def load_head(model, directory):
    """Copy the head (layer weights, projector, classifier) of a probe output dir into `model`, in place.

    Raises:
        UsageError: the probe's labels differ from the model's, or a head tensor is missing or of another shape.
    """
    theirs = AutoConfig.from_pretrained(directory)
    probe_labels = [theirs.id2label[i] for i in range(theirs.num_labels)]
    run_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if probe_labels != run_labels:
        raise UsageError(f"--init_head_from {directory}: its labels {probe_labels} differ from this run's {run_labels}")
    weights = load_file(Path(directory) / "model.safetensors")
    state = model.state_dict()
    for name in HEAD_PARAMETERS:
        if name not in weights or weights[name].shape != state[name].shape:
            raise UsageError(f"--init_head_from {directory}: {name} is missing or has another shape")
        state[name].copy_(weights[name])
    probe = Path(directory) / PROBE_RESULTS_FILE
    source = json.loads(probe.read_text()).get("encoder", {}).get("model") if probe.is_file() else None
    logger.info("Head (layer weights, projector, classifier) from %s%s", directory,
                f", a probe of {source}" if source else "")
    return model

"""SERTrainer: the Trainer with SER learning-rate schedules and pipeline-faithful evaluation."""

import math
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import WeightedRandomSampler
from transformers import Trainer
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import SchedulerType

from ser_hf.models.encoders import is_regression
from ser_hf.storage import is_storage_failure, write_failed
from ser_hf.training.callbacks import with_worker_stop_signals
from ser_hf.training.sampling import WindowedLengthSampler
from ser_hf.training.schedules import DEFAULT_DECAY_RATIO, reduce_on_plateau, warmup_stable_decay


class NonFiniteError(FloatingPointError):
    """NaN or Inf reached the model or the loss."""


def _name(paths):
    return ", ".join(paths) if paths else "(file names unknown)"


def _check_finite(inputs, paths):
    (name, values), = inputs.items()
    bad_rows = (~torch.isfinite(values)).flatten(1).any(dim=1)
    if bad_rows.any():
        bad = [paths[i] for i in bad_rows.nonzero().flatten().tolist()] if paths else None
        raise NonFiniteError(
            f"NaN or Inf samples in {_name(bad)}: the audio scan should have excluded such a file (was it changed "
            "after the scan, or is this a custom transform?). Stopped before the weights were touched; the last "
            "saved checkpoint is intact.")


def _waveforms(inputs):
    # Cropping and per-clip lengths are about the time axis of waveforms (batch x samples). Fixed-length features
    # (Whisper's batch x mels x frames) come from the collator without a mask and never reach here.
    (name, values), = inputs.items()
    if values.dim() != 2:
        raise ValueError(f"{name} of shape {tuple(values.shape)}: only waveform batches (batch x samples) can be "
                         "cropped or evaluated clip by clip; give fixed-length features without an attention mask")
    return name, values


def _full_precision(model):
    """The model's fp32 forward during mixed-precision training, for evaluation: scores equal the pipeline's.

    Under bf16/fp16 accelerate replaces `model.forward` with one that enters autocast itself (so an outer
    `autocast(enabled=False)` cannot undo it) and keeps the original as `_original_forward`; the weights stay fp32.
    """
    return getattr(model, "_original_forward", model)


def concordance_loss(predictions, targets, eps=1e-8):
    """1 - CCC, the concordance correlation coefficient of each column over the batch, averaged over the columns.

    CCC = 2 cov(p, t) / (var(p) + var(t) + (mean(p) - mean(t))^2) rewards predictions that follow the targets in
    order, scale and offset alike. Over one clip it is undefined (no variance): a batch of one clip (the last of an
    epoch, or --per_device_train_batch_size 1) is scored by the mean squared error instead.

    Args:
        predictions, targets: (batch, dimensions) tensors.
        eps: keeps a batch in which predictions and targets are all equal finite (CCC 0 there).

    Returns:
        A scalar tensor, computed in float32.
    """
    predictions, targets = predictions.float(), targets.float()
    if predictions.shape[0] < 2:
        return F.mse_loss(predictions, targets)
    mean_p, mean_t = predictions.mean(dim=0), targets.mean(dim=0)
    var_p, var_t = predictions.var(dim=0, unbiased=False), targets.var(dim=0, unbiased=False)
    covariance = ((predictions - mean_p) * (targets - mean_t)).mean(dim=0)
    ccc = 2 * covariance / (var_p + var_t + (mean_p - mean_t) ** 2 + eps)
    return (1 - ccc).mean()


def regression_loss(predictions, targets, kind="ccc"):
    """The loss of `--task dimensional`: "ccc" (`concordance_loss`) or "mse" (mean squared error), in float32."""
    if kind == "ccc":
        return concordance_loss(predictions, targets)
    if kind == "mse":
        return F.mse_loss(predictions.float(), targets.float())
    raise ValueError(f"dimensional_loss {kind!r}: ccc or mse")


def balanced_sample_weights(labels):
    """Sampling weight of each clip, 1 / (clips of its class): every class is drawn equally often.

    Args:
        labels: the training label ids, one per clip.

    Returns:
        a float64 tensor with one weight per clip.
    """
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels)
    return torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)


class SERTrainer(Trainer):
    """Trainer for audio classification.

    - `create_scheduler`: `warmup_stable_decay` with a decay ratio instead of a step count, and
      `reduce_lr_on_plateau` on a chosen evaluation metric (the evaluation loss by default).
    - Evaluation of models without an attention mask (group-norm wav2vec2) runs each clip at its own
      length, because zero padding changes what such a model pools: the metrics equal the pipeline's.
      Whisper's fixed-length log-mel batches come without a mask and run whole: each clip is padded to 30 s
      in the pipeline too.

    - `balanced_sampling` (a training argument): clips drawn with probability 1 / (clips of their class).
    - A non-finite gradient norm stops training before the optimizer step (as a non-finite loss does before
      backward), so no NaN reaches the weights or a later checkpoint.
    - `crop_training_batches`: training batches are cut to their shortest clip (a random window of each
      clip) instead of being padded, so a model without an attention mask never trains on zeros.
    - A regression model (`--task dimensional`, config `problem_type` "regression") is trained on `regression_loss`
      (the training argument `dimensional_loss`: 1 - CCC or MSE) instead of cross-entropy.

    Args:
        uses_attention_mask: whether the model takes the collator's attention mask.
        crop_training_batches: crop instead of pad in training (the 'crop' padding mode).
        class_weights: optional tensor of per-class loss weights.
        Everything else goes to `transformers.Trainer`.
    """

    def __init__(self, *args, uses_attention_mask=True, crop_training_batches=False, class_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.uses_attention_mask = uses_attention_mask
        self.crop_training_batches = crop_training_batches
        self.class_weights = class_weights
        self._paths_since_step = []  # files behind the gradients of the coming optimizer step

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        except BaseException:
            # A run that stops on an error (a full disk, a NaN) would leave its progress bars open, and Python would
            # print them ("50% 1/2") after the one-line error, at exit.
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, ProgressCallback):
                    for name in ("prediction_bar", "training_bar"):
                        if getattr(callback, name, None) is not None:
                            getattr(callback, name).close()
                            setattr(callback, name, None)
            raise

    def _save_checkpoint(self, model, trial):
        # A full disk mid-save leaves half a checkpoint, and PyTorch says only "unexpected pos 8448 vs 8342": remove
        # the half (a resume must not pick it, and it holds the space) and say what happened, in one line.
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:
            if not is_storage_failure(err):
                raise
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            failed = write_failed(err, folder.name, folder.parent, "rerun with --resume true: it continues from the "
                                  "newest intact checkpoint (or add --save_total_limit 1 to keep fewer)")
            if self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)
            raise failed from err

    # Workers ignore the stop signals that reach the whole process group or job (training/callbacks.py).
    def get_train_dataloader(self):
        return with_worker_stop_signals(super().get_train_dataloader())

    def get_eval_dataloader(self, eval_dataset=None):
        return with_worker_stop_signals(super().get_eval_dataloader(eval_dataset))

    def get_test_dataloader(self, test_dataset):
        return with_worker_stop_signals(super().get_test_dataloader(test_dataset))

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if getattr(self.args, "length_grouping_batches", 0):
            # The "length" column, read without decoding any audio.
            return WindowedLengthSampler(dataset.with_format(None)["length"], self.args.train_batch_size,
                                         self.args.length_grouping_batches)
        if not getattr(self.args, "balanced_sampling", False):
            return super()._get_train_sampler(train_dataset)
        if hasattr(dataset, "with_format"):  # a datasets.Dataset: its label column, without decoding any audio
            labels = list(dataset.with_format(None)["label"])
        else:
            labels = [int(item["labels"]) for item in dataset]
        weights = balanced_sample_weights(labels)
        # Drawn from torch's global RNG at each epoch, as RandomSampler is: seeded and checkpointed by the Trainer.
        return WeightedRandomSampler(weights, num_samples=len(weights), replacement=True)

    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        finite = grad_norm is None or math.isfinite(float(grad_norm))
        # With fp16 loss scaling an overflow is routine: the scaler skips that step and lowers the scale.
        if not finite and getattr(self.accelerator, "scaler", None) is None:
            raise NonFiniteError(
                f"the gradient norm is {float(grad_norm)} at step {self.state.global_step + 1} (batches of "
                f"{_name(self._paths_since_step)}); stopped before the optimizer step, so the weights and the last "
                "saved checkpoint are intact. Lower the learning rate, keep max_grad_norm > 0, or use bf16 "
                "instead of fp16.")
        self._paths_since_step = []
        return grad_norm

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            optimizer = optimizer or self.optimizer
            kind = SchedulerType(self.args.lr_scheduler_type)
            kwargs = dict(self.args.lr_scheduler_kwargs or {})
            if kind == SchedulerType.WARMUP_STABLE_DECAY:
                self.lr_scheduler = warmup_stable_decay(
                    optimizer,
                    num_training_steps=num_training_steps,
                    num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                    decay_ratio=kwargs.get("decay_ratio", DEFAULT_DECAY_RATIO),
                    decay_type=kwargs.get("decay_type", "linear"),
                    min_lr_ratio=kwargs.get("min_lr_ratio", 0.0),
                )
                self._created_lr_scheduler = True
            elif kind == SchedulerType.REDUCE_ON_PLATEAU:
                self.lr_scheduler = reduce_on_plateau(
                    optimizer,
                    mode="min" if self.args.plateau_metric == "loss" else "max",
                    factor=self.args.plateau_factor,
                    patience=self.args.plateau_patience,
                )
                self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def _evaluate(self, trial, ignore_keys_for_eval, skip_scheduler=False):
        # The Trainer steps a plateau scheduler on metric_for_best_model (UA here); ours watches
        # plateau_metric, the evaluation loss by default, so step it ourselves.
        metrics = super()._evaluate(trial, ignore_keys_for_eval, skip_scheduler=True)
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not skip_scheduler:
            self.lr_scheduler.step(metrics[f"eval_{self.args.plateau_metric}"])
        return metrics

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        attention_mask = inputs.pop("attention_mask", None)
        paths = inputs.pop("paths", None)
        _check_finite(inputs, paths)
        if model.training and paths:
            self._paths_since_step.extend(paths)
        if model.training and self.crop_training_batches and attention_mask is not None:
            inputs, attention_mask = self._crop_to_shortest(inputs, attention_mask)
        forward = model if model.training else _full_precision(model)
        if self.uses_attention_mask:
            logits = forward(**inputs, attention_mask=attention_mask).logits
        elif model.training or attention_mask is None:
            logits = forward(**inputs).logits
        else:
            logits = self._logits_clip_by_clip(forward, inputs, attention_mask)
        if is_regression(self.model.config):  # --task dimensional: transformers' heads would compute cross-entropy
            loss = regression_loss(logits, labels, getattr(self.args, "dimensional_loss", "ccc"))
        else:
            weight = None if self.class_weights is None else self.class_weights.to(logits.device, logits.dtype)
            loss = F.cross_entropy(logits, labels, weight=weight)
        if not torch.isfinite(loss):
            # Stop before backward: one such step turns every weight into NaN; checkpoints so far stay good.
            raise NonFiniteError(f"the loss is {loss.item()} on a batch of {_name(paths)}; the last saved "
                                 "checkpoint is intact. Lower the learning rate or check these files.")
        return (loss, {"logits": logits}) if return_outputs else loss

    @staticmethod
    def _crop_to_shortest(inputs, attention_mask):
        name, values = _waveforms(inputs)
        lengths = attention_mask.sum(dim=1)
        shortest = int(lengths.min())
        # A random window per clip (torch's RNG is seeded by the Trainer, so runs repeat).
        starts = (torch.rand(len(lengths), device=lengths.device) * (lengths - shortest + 1)).long()
        windows = starts[:, None] + torch.arange(shortest, device=values.device)[None, :]
        return {name: torch.gather(values, 1, windows)}, torch.ones_like(windows)

    @staticmethod
    def _logits_clip_by_clip(model, inputs, attention_mask):
        name, values = _waveforms(inputs)
        lengths = attention_mask.sum(dim=1).tolist()
        rows = [model(**{name: values[i : i + 1, :length]}).logits for i, length in enumerate(lengths)]
        return torch.cat(rows, dim=0)

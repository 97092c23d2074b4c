"""The intensity head of a `--task multitask` model scored on evaluation splits (files: `ser_hf.inference.intensity`).

The head reads the vector the emotion classifier receives (`ser_hf.models.intensity_head.pooled_capture`), so its
predictions come from the same forward pass, on the same preprocessed inputs, as the emotion scores: the batches
go through `SERTrainer.compute_loss` exactly as `evaluate_split` sends them (clip by clip for models without an
attention mask).
"""

import numpy as np
import torch

from ser_hf.corpora.intensity import IGNORE_INDEX
from ser_hf.evaluation.metrics import compute_ser_metrics
from ser_hf.models.intensity_head import pooled_capture


def predict_intensity(trainer, head, dataset):
    """Intensity logits and targets of every clip of an evaluation dataset, in dataset order.

    Args:
        trainer: the `SERTrainer` the emotion scores came from (its model, collator and evaluation path).
        head: the `IntensityHead` (saved beside the model, or the one attached in training).
        dataset: a split from `build_datasets` over rows marked with intensities (`mark_intensity`).

    Returns:
        (logits: clips x intensities float array, targets: int array, -100 where a clip has no intensity)
    """
    model = trainer.model
    was_training, model_training = head.training, model.training
    head.eval()
    model.eval()
    logits, targets = [], []
    try:
        with torch.no_grad():
            for batch in trainer.get_eval_dataloader(dataset):
                batch = {k: v.to(trainer.args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                target = batch.pop("intensity_labels")
                with pooled_capture(model) as pooled:
                    trainer.compute_loss(model, batch, return_outputs=True)
                scores = head.to(target.device)(torch.cat(pooled, dim=0).float())
                scores, target = trainer.accelerator.gather_for_metrics((scores, target))
                logits.append(scores.float().cpu().numpy())
                targets.append(target.cpu().numpy())
    finally:
        head.train(was_training)
        model.train(model_training)
    return np.concatenate(logits), np.concatenate(targets)


def intensity_metrics(logits, targets, names):
    """UA, WA, macro-F1 (with chance and majority baselines) of the intensity head on the clips that have one.

    Args:
        logits: clips x intensities.
        targets: intensity ids, -100 for clips without one (CREMA-D XX, neutral): those are left out.
        names: intensity names in id order.

    Returns:
        `compute_ser_metrics` output plus `num_examples` (clips scored) and `num_without_intensity`, or None when
        no clip of the split has an intensity.
    """
    keep = np.asarray(targets) != IGNORE_INDEX
    if not keep.any():
        return None
    metrics = compute_ser_metrics(np.asarray(logits)[keep].argmax(axis=-1), np.asarray(targets)[keep], list(names))
    metrics["num_examples"] = int(keep.sum())
    metrics["num_without_intensity"] = int((~keep).sum())
    metrics["label_names"] = list(names)
    return metrics


def evaluate_intensity(trainer, head, data):
    """{split: intensity metrics} of every held-out split of `data` (splits without any intensity are left out)."""
    results = {}
    for split in (name for name in data if name != "train"):
        found = intensity_metrics(*predict_intensity(trainer, head, data[split]), head.names)
        if found is not None:
            results[split] = found
    return results



"""Intensity predictions of a `--task multitask` model: on evaluation splits (metrics) and on files (predict).

The intensity head reads the vector the emotion classifier receives (`ser_hf.training.multitask.pooled_capture`),
so its predictions come from the same forward pass, on the same preprocessed inputs, as the emotion scores:
evaluation runs the batches through `SERTrainer.compute_loss` exactly as `evaluate_split` does (clip by clip for
models without an attention mask); predict runs each file's 16 kHz samples (windows for long files) through the
pipeline's model and feature extractor a second time, since `pipeline()` itself returns emotions only.
"""

import numpy as np
import torch

from ser_hf.corpora.intensity import IGNORE_INDEX
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.evaluation.inference import chunk_starts
from ser_hf.evaluation.metrics import compute_ser_metrics
from ser_hf.training.multitask import pooled_capture


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
                batch = trainer._prepare_inputs(batch)
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


def file_intensity(classifier, head, path, chunk_seconds=10.0, chunk_overlap=5.0):
    """Intensity probabilities of one audio file, averaged over the same windows `classify_file` uses.

    Args:
        classifier: the audio-classification pipeline (its model and feature extractor are used).
        head: the model's `IntensityHead`.
        path: an audio file that `classify_file` classified without error.
        chunk_seconds, chunk_overlap: as in `classify_file`.

    Returns:
        {intensity name: probability}.
    """
    from torchcodec.decoders import AudioDecoder

    model, extractor = classifier.model, classifier.feature_extractor
    # What the pipeline's `ffmpeg -ac 1 -ar 16000` gives (see ser_hf.evaluation.inference).
    decoder = AudioDecoder(str(path), sample_rate=SAMPLE_RATE, num_channels=1)
    total = decoder.metadata.duration_seconds_from_header or 0.0
    chunk_n = round(chunk_seconds * SAMPLE_RATE)
    hop_n = round((chunk_seconds - chunk_overlap) * SAMPLE_RATE)
    windows = ([None] if total <= chunk_seconds else chunk_starts(round(total * SAMPLE_RATE), chunk_n, hop_n))
    head = head.to(model.device).eval()
    probabilities = []
    with torch.inference_mode():
        for start in windows:
            if start is None:
                samples = decoder.get_all_samples().data.numpy()[0]
            else:
                samples = decoder.get_samples_played_in_range(
                    start / SAMPLE_RATE, min((start + chunk_n) / SAMPLE_RATE, total)).data.numpy()[0]
            inputs = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            inputs = {k: v.to(model.device) for k, v in inputs.items()}
            with pooled_capture(model) as pooled:
                model(**inputs)
            probabilities.append(head(torch.cat(pooled).float()).softmax(dim=-1)[0].cpu().numpy())
    mean = np.mean(probabilities, axis=0)
    return {name: float(p) for name, p in zip(head.names, mean)}


def add_intensity_to_rows(classifier, head, rows, chunk_seconds=10.0, chunk_overlap=5.0):
    """Add "intensity" and "intensity_score" to each classified row of `classify_files` (errors stay as they are).

    Returns:
        The rows (changed in place).
    """
    for row in rows:
        if row.get("error"):
            row["intensity"], row["intensity_score"] = None, None
            continue
        scores = file_intensity(classifier, head, row["path"], chunk_seconds, chunk_overlap)
        best = max(scores, key=scores.get)
        row["intensity"], row["intensity_score"] = best, scores[best]
    return rows

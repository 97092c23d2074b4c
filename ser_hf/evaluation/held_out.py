"""Predict held-out splits through the SERTrainer (the path a training run evaluates with) and score them.

A trained output dir is loaded with `load_trained`; `evaluate_split` gives metrics and one row per clip
(`evaluate_dimensional_split` for a `--task dimensional` regression model: its outputs as they are, no softmax).
"""

from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from ser_hf.config import SERTrainingArguments
from ser_hf.data.collator import AudioCollator
from ser_hf.evaluation.calibration import calibration_summary
from ser_hf.evaluation.dimensional import compute_dimensional_metrics
from ser_hf.evaluation.metrics import compute_ser_metrics
from ser_hf.models.encoders import uses_attention_mask
from ser_hf.training.trainer import SERTrainer


def load_trained(model_dir, scratch_dir, batch_size=16):
    """A trained model ready to predict datasets built by `ser_hf.data.prepare.build_datasets`.

    Models without an attention mask are evaluated clip by clip at their own length, as in training, so the
    scores equal the pipeline's.

    Args:
        model_dir: a finetune.py output dir (safetensors weights, config.json, preprocessor_config.json).
        scratch_dir: an empty folder the Trainer may write to (nothing is saved there).
        batch_size: evaluation batch size.

    Returns:
        (SERTrainer, feature_extractor, label_names in id order)
    """
    model = AutoModelForAudioClassification.from_pretrained(Path(model_dir), use_safetensors=True)
    feature_extractor = AutoFeatureExtractor.from_pretrained(Path(model_dir))
    trainer = SERTrainer(
        model=model,
        args=SERTrainingArguments(output_dir=str(scratch_dir), per_device_eval_batch_size=batch_size, report_to="none",
                                  remove_unused_columns=False, dataloader_num_workers=0,
                                  dataloader_pin_memory=torch.cuda.is_available()),
        data_collator=AudioCollator(feature_extractor.model_input_names[0], None, feature_extractor.padding_value),
        uses_attention_mask=uses_attention_mask(feature_extractor),
    )
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return trainer, feature_extractor, label_names


def predict_probabilities(trainer, dataset, split):
    """Class probabilities (softmax of the logits) and label ids of a split, in dataset order."""
    output = trainer.predict(dataset, metric_key_prefix=split)
    logits = output.predictions - output.predictions.max(axis=-1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True), np.asarray(output.label_ids)


def score_probabilities(probs, label_ids, dataset, label_names):
    """SER metrics and one row per clip from class probabilities (one model's, or an ensemble's average).

    Returns:
        (metrics: UA, WA, macro-F1, per-class recall, confusion matrix, baselines, num_examples, `ece` and
         `calibration` (reliability bins, see `ser_hf.evaluation.calibration.calibration_summary`);
         rows: path, speaker, true, predicted, confidence per clip, in dataset order)
    """
    predicted = probs.argmax(axis=-1)
    metrics = compute_ser_metrics(predicted, label_ids, label_names)
    metrics["num_examples"] = int(len(predicted))
    # From the same probabilities as the labels: the top score is what a pipeline user reads as "how sure".
    calibration = calibration_summary(probs.max(axis=-1), predicted == np.asarray(label_ids))
    metrics["ece"] = calibration.pop("ece")
    metrics["calibration"] = calibration
    # Plain columns only: the transform would decode the audio again.
    meta = dataset.with_format(None).select_columns(["path", "speaker"]).to_list()
    rows = [
        {"path": m["path"], "speaker": m["speaker"], "true": label_names[int(t)], "predicted": label_names[int(p)],
         "confidence": round(float(probs[i, p]), 6)}
        for i, (m, t, p) in enumerate(zip(meta, label_ids, predicted))
    ]
    return metrics, rows


def evaluate_split(trainer, dataset, label_names, split):
    """Predict a split: full SER metrics and one row per clip (see `score_probabilities`)."""
    probs, label_ids = predict_probabilities(trainer, dataset, split)
    return score_probabilities(probs, label_ids, dataset, label_names)


def predict_values(trainer, dataset, split):
    """A regression model's outputs and the targets of a split, in dataset order: two (clips, dimensions) arrays.

    The outputs are the model's logits as they are, which is what `pipeline("audio-classification")` gives for a
    model whose config says `problem_type: regression`.
    """
    output = trainer.predict(dataset, metric_key_prefix=split)
    predictions = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return np.asarray(predictions, dtype=np.float32), np.asarray(output.label_ids, dtype=np.float32)


def score_values(values, targets, dataset, names, train_mean=None):
    """Dimensional metrics and one row per clip from predicted values (one model's, or an ensemble's mean).

    Args:
        values, targets: (clips, dimensions) arrays in dataset order.
        dataset: the split's Dataset (its path and speaker columns).
        names: the dimensions in column order.
        train_mean: the training split's mean targets, for the baseline (`compute_dimensional_metrics`).

    Returns:
        (metrics: `compute_dimensional_metrics`; rows: path, speaker, true_<name> and pred_<name> per clip, in
         dataset order, values rounded to 6 decimals)
    """
    metrics = compute_dimensional_metrics(values, targets, names, train_mean)
    meta = dataset.with_format(None).select_columns(["path", "speaker"]).to_list()
    rows = [{"path": m["path"], "speaker": m["speaker"],
             **{f"true_{name}": round(float(t[k]), 6) for k, name in enumerate(names)},
             **{f"pred_{name}": round(float(v[k]), 6) for k, name in enumerate(names)}}
            for m, t, v in zip(meta, targets, values)]
    return metrics, rows


def evaluate_dimensional_split(trainer, dataset, names, split, train_mean=None):
    """Predict a split with a regression model: dimensional metrics and one row per clip (see `score_values`)."""
    values, targets = predict_values(trainer, dataset, split)
    return score_values(values, targets, dataset, names, train_mean)

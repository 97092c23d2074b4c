"""Probe analyses: which layer carries emotion (one probe per hidden state alone), and the cache checked against the
full model.

Free once the probe's cache is filled: each single-layer head trains on that layer's cached means in seconds.
Each head's epoch is chosen on the validation split, as the full probe's is, so validation UA is optimistic (the
same way for every layer, so layers compare); a test split (`--test_fold`) is scored at that epoch too.
"""

import logging

import numpy as np
import torch

from ser_hf.evaluation.metrics import compute_ser_metrics
from ser_hf.models.probe_head import ProbeHead
from ser_hf.training.probe import train_probe_head

logger = logging.getLogger(__name__)


def layer_name(index, model_type):
    """What hidden state `index` is: 0 the transformer's input, k the output of transformer layer k."""
    if index == 0:
        return "conv front end + positions (Whisper)" if model_type == "whisper" else "feature projection (CNN)"
    return f"transformer layer {index}"


def per_layer_scores(initial_head, model_type, features, labels, label_names, settings, compute_metrics):
    """Train a probe on each hidden state alone and score it on every held-out split.

    Args:
        initial_head: the `ProbeHead` the full probe started from: each layer's probe starts from its projector
            and classifier.
        model_type: the encoder's architecture (names the layers).
        features: {split: means [clips, layers + 1, hidden_size]}, with "train" and "validation".
        labels: {split: label ids}.
        label_names: label names in id order.
        settings: `ProbeSettings` of the run.
        compute_metrics: the Trainer-style metric function that selects each probe's epoch.

    Returns:
        One row per hidden state: layer, name, best_epoch, and `<split>_ua` / `<split>_wa` / `<split>_macro_f1`
        for every split but train.
    """
    rows = []
    held_out = [split for split in features if split != "train"]
    for layer in range(features["train"].shape[1]):
        def one_layer(split):
            return features[split][:, layer:layer + 1], labels[split]

        head = ProbeHead.from_model(initial_head, num_layers=1)
        result = train_probe_head(head, one_layer("train"), one_layer("validation"), settings, compute_metrics)
        row = {"layer": layer, "name": layer_name(layer, model_type), "best_epoch": result.best_epoch}
        with torch.no_grad():
            for split in held_out:
                x, y = one_layer(split)
                predicted = result.head(torch.as_tensor(x)).argmax(dim=-1).numpy()
                scores = compute_ser_metrics(predicted, np.asarray(y), label_names)
                row.update({f"{split}_{m}": float(scores[m]) for m in ("ua", "wa", "macro_f1")})
        rows.append(row)
    return rows


def agreement_with_cache(head, features, rows, label_names):
    """How many clips the head on the cached means labels as the full model did (`evaluate_split`'s rows).

    They agree up to float rounding; a clip evaluated otherwise (a crop with eval_max_duration_seconds, a
    changed file) shows up here.

    Returns:
        {"clips", "same_prediction"}.
    """
    with torch.no_grad():
        predicted = head(torch.as_tensor(features)).argmax(dim=-1).tolist()
    same = sum(label_names[p] == row["predicted"] for p, row in zip(predicted, rows))
    if same < len(rows):
        logger.warning("The probe's head on the cached means and the full model disagree on %d of %d clips (a crop "
                       "from eval_max_duration_seconds, or files changed since the cache was filled?)",
                       len(rows) - same, len(rows))
    return {"clips": len(rows), "same_prediction": int(same)}

"""Per-layer probes find the layer that carries the labels; the cache is checked against the full model's rows."""

import numpy as np
import torch

from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.evaluation.probe_analysis import agreement_with_cache, layer_name, per_layer_scores
from ser_hf.models.probe_head import ProbeHead
from ser_hf.training.probe import ProbeSettings

LABELS = ["low", "mid", "high"]


def _split(seed, n=60):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.standard_normal((n, 3, 8)).astype(np.float32)
    x[:, 1, 0] += 8.0 * labels  # only hidden state 1 tells the classes apart
    return torch.as_tensor(x), torch.as_tensor(labels)


def _initial_head():
    torch.manual_seed(0)
    return ProbeHead(torch.ones(3) / 3, torch.nn.Linear(8, 4), torch.nn.Linear(4, 3))


def test_the_layer_that_carries_the_labels_stands_out():
    splits = {"train": _split(0), "validation": _split(1), "test": _split(2)}
    rows = per_layer_scores(_initial_head(), "wav2vec2", {k: v[0] for k, v in splits.items()},
                            {k: v[1] for k, v in splits.items()}, LABELS,
                            ProbeSettings(epochs=80, learning_rate=3e-2, batch_size=16, patience=None),
                            make_compute_metrics(LABELS))
    assert [row["layer"] for row in rows] == [0, 1, 2]
    assert rows[1]["validation_ua"] == 1.0 and rows[1]["test_ua"] > 0.9
    assert max(rows[0]["test_ua"], rows[2]["test_ua"]) < 0.7
    assert {"name", "best_epoch", "validation_wa", "test_macro_f1"} <= set(rows[0])
    assert layer_name(0, "whisper").startswith("conv front end") and layer_name(2, "hubert") == "transformer layer 2"


def test_agreement_counts_the_clips_the_full_model_labelled_alike():
    head = _initial_head()
    x, _ = _split(0, n=6)
    predicted = head(x).argmax(-1).tolist()
    rows = [{"predicted": LABELS[p]} for p in predicted]
    rows[0]["predicted"] = LABELS[(predicted[0] + 1) % 3]
    assert agreement_with_cache(head, x.numpy(), rows, LABELS) == {"clips": 6, "same_prediction": 5}

"""Tests for ser_hf.evaluation.metrics: hand-computed UA/WA/F1, offline loading, the Trainer adapter."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from ser_hf.evaluation.metrics import (
    SER_METRICS_PATH,
    compute_ser_metrics,
    load_ser_metric,
    make_compute_metrics,
    metric_key,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_imbalanced_three_classes_hand_computed():
    # 6/3/1 references; per class: 5 of 6, 1 of 3, 0 of 1 correct.
    refs = [0] * 6 + [1] * 3 + [2]
    preds = [0, 0, 0, 0, 0, 1] + [1, 0, 0] + [0]
    r = load_ser_metric().compute(predictions=preds, references=refs, num_labels=3)

    assert r["wa"] == pytest.approx(6 / 10)
    assert r["ua"] == pytest.approx((5 / 6 + 1 / 3 + 0) / 3)  # 7/18: UA and WA differ under imbalance
    # F1 per class: 2tp / (2tp + fp + fn) = 10/14, 2/5, 0.
    assert r["macro_f1"] == pytest.approx((10 / 14 + 2 / 5 + 0) / 3)
    assert r["per_class_recall"] == pytest.approx([5 / 6, 1 / 3, 0.0])
    assert r["confusion_matrix"] == [[5, 1, 0], [2, 1, 0], [1, 0, 0]]
    assert r["ua"] == pytest.approx(balanced_accuracy_score(refs, preds))


def test_absent_class_is_left_out_of_ua_and_macro_f1():
    # Four labels; class 2 never occurs in the references but is predicted twice.
    refs = [0, 0, 0, 0, 1, 1, 3, 3]
    preds = [0, 0, 2, 2, 1, 1, 3, 3]
    r = compute_ser_metrics(preds, refs, ["neutral", "happy", "sad", "angry"])

    assert r["per_class_recall"][2] is None
    assert r["per_class_recall"] == pytest.approx([0.5, 1.0, None, 1.0])  # approx accepts None == None
    assert r["wa"] == pytest.approx(6 / 8)
    assert r["ua"] == pytest.approx((0.5 + 1 + 1) / 3)  # not / 4
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 3)  # F1 over {0, 1, 3}, not 4 classes
    assert r["confusion_matrix"][0] == [2, 0, 2, 0]
    assert r["confusion_matrix"][2] == [0, 0, 0, 0]
    assert len(r["confusion_matrix"]) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that y_pred has a class absent from y_true
        assert r["ua"] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert r["chance_ua"] == pytest.approx(1 / 3)
    json.dumps(r, allow_nan=False)  # the dict is written to metrics json files as is


def test_constant_predictor_scores_chance_ua_and_majority_wa():
    refs = [0] * 5 + [1] * 3 + [2] * 2
    r = compute_ser_metrics([0] * len(refs), refs, ["a", "b", "c", "d"])
    assert r["ua"] == pytest.approx(1 / 3) == r["chance_ua"]
    assert r["wa"] == pytest.approx(0.5) == r["majority_baseline_wa"]
    assert r["macro_f1"] == pytest.approx((2 * 5 / (2 * 5 + 5)) / 3)


def test_labels_argument_and_bad_inputs():
    metric = load_ser_metric()
    refs, preds = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    r = metric.compute(predictions=preds, references=refs, num_labels=3, labels=[0, 1])
    assert r["ua"] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="undefined"):
        metric.compute(predictions=preds, references=refs, num_labels=4, labels=[0, 3])
    with pytest.raises(ValueError, match="outside"):
        metric.compute(predictions=[0, 5], references=[0, 1], num_labels=3)
    with pytest.raises(ValueError, match="predictions for"):
        compute_ser_metrics([0, 1], [0, 1, 1], ["a", "b"])


def test_make_compute_metrics_takes_argmax_of_logits():
    from transformers import EvalPrediction

    names = ["neutral", "pleasant surprise", "sad"]
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 1.0], [0.0, 0.2, 0.1], [0.1, 0.0, 5.0]], dtype=np.float32)
    labels = np.array([0, 1, 1, 2])  # argmax = 0, 1, 1, 2: all correct
    fn = make_compute_metrics(names)
    out = fn(EvalPrediction(predictions=logits, label_ids=labels))

    assert set(out) == {"ua", "wa", "macro_f1", "recall_neutral", "recall_pleasant_surprise", "recall_sad"}
    assert all(type(v) is float for v in out.values())
    assert out["ua"] == out["wa"] == 1.0

    # Tuple predictions (logits, hidden_states): the first element is the logits.
    hidden = np.zeros((4, 7, 5), dtype=np.float32)
    wrong = logits[:, [1, 2, 0]]  # rotated columns: every argmax is wrong
    out = fn(EvalPrediction(predictions=(wrong, hidden), label_ids=labels))
    assert out["wa"] == 0.0
    assert out["recall_sad"] == 0.0


def test_make_compute_metrics_omits_absent_classes_and_rejects_clashing_names():
    from transformers import EvalPrediction

    fn = make_compute_metrics(["a", "b", "c"])
    logits = np.eye(3, dtype=np.float32)[[0, 1, 1]]
    out = fn(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 0])))
    assert "recall_c" not in out
    assert out["recall_a"] == 0.5
    assert metric_key("angry (high)") == "angry_high"
    with pytest.raises(ValueError, match="distinct"):
        make_compute_metrics(["angry high", "angry_high"])


_OFFLINE_LOAD_SCRIPT = r"""
import json, multiprocessing, socket, sys

attempts = []
def _no_network(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network access attempted")
socket.socket.connect = _no_network
socket.create_connection = _no_network

# evaluate imports transformers' pipelines (and torch) only for its Evaluator, which loading a metric never
# uses; evaluate catches the ImportError. Blocking it takes seconds off this subprocess.
sys.modules["transformers.pipelines"] = None

from ser_hf.evaluation.metrics import load_ser_metric  # noqa: E402  (after the guard on purpose)
import evaluate  # noqa: E402,F401  (imported once here, before forking, so each child only loads the module)

def child(barrier, queue):
    try:
        barrier.wait(timeout=30)  # both processes copy/import the module at the same moment
        r = load_ser_metric().compute(predictions=[0, 1, 1], references=[0, 1, 2], num_labels=3)
        queue.put({"ua": r["ua"], "attempts": attempts})
    except BaseException as e:  # report instead of leaving the parent waiting on the queue
        queue.put({"error": repr(e), "attempts": attempts})

ctx = multiprocessing.get_context("fork")
barrier, queue = ctx.Barrier(2), ctx.Queue()
procs = [ctx.Process(target=child, args=(barrier, queue)) for _ in range(2)]
for p in procs:
    p.start()
results = [queue.get(timeout=60) for _ in procs]
for p in procs:
    p.join(timeout=60)
print(json.dumps({"results": results, "exitcodes": [p.exitcode for p in procs], "attempts": attempts}))
"""


def test_loads_offline_in_two_processes_at_once(tmp_path):
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_EVALUATE_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),  # a fresh cache: the copy really happens here
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
    )
    env.pop("HF_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_LOAD_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r.get("error") for r in report["results"]] == [None, None]
    assert report["exitcodes"] == [0, 0]
    assert [r["ua"] for r in report["results"]] == [pytest.approx(2 / 3)] * 2
    assert report["attempts"] == [] and all(r["attempts"] == [] for r in report["results"])
    # evaluate imports a copy of the script from HF_MODULES_CACHE, one folder per content hash.
    copies = list((tmp_path / "modules").glob("evaluate_modules/metrics/ser_metrics/*/ser_metrics.py"))
    assert len(copies) == 1
    assert copies[0].read_text() == SER_METRICS_PATH.read_text()

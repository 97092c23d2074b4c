"""Tests for ser_hf.plots: each figure is written as a real PNG, including edge cases."""

import struct

import pytest

from ser_hf.plots import plot_confusion_matrix, plot_per_class_recall, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """Width and height from the PNG header (IHDR is always the first chunk)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def trainer_like_log_history():
    """The shape of `trainer.state.log_history` for 2 epochs, logging every 5 steps, evaluating per epoch."""
    history = []
    for step in range(5, 45, 5):
        history.append(
            {"loss": 2.1 - step * 0.02, "grad_norm": 3.0, "learning_rate": 1e-3 * min(1, step / 10) * (1 - step / 50),
             "epoch": step / 20, "step": step}
        )
        if step % 20 == 0:
            history.append(
                {"eval_loss": 1.9 - step * 0.01, "eval_ua": 0.2 + step / 100, "eval_wa": 0.25 + step / 100,
                 "eval_macro_f1": 0.15 + step / 100, "eval_recall_angry": 0.5, "eval_runtime": 1.2,
                 "eval_samples_per_second": 100.0, "eval_steps_per_second": 10.0, "epoch": step / 20, "step": step}
            )
    history.append({"train_runtime": 30.0, "train_samples_per_second": 20.0, "train_steps_per_second": 1.3,
                    "total_flos": 1e12, "train_loss": 1.6, "epoch": 2.0, "step": 40})
    return history


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_8_classes(tmp_path, normalize):
    names = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    cm = [[(5 if i == j else (i + j) % 3) for j in range(8)] for i in range(8)]
    cm[1] = [0] * 8  # a class without examples must not divide by zero when normalising
    out = plot_confusion_matrix(cm, names, tmp_path / "sub" / "cm.png", normalize=normalize)
    assert out == tmp_path / "sub" / "cm.png"
    w, h = png_size(out)
    assert 300 < w < 2500 and 300 < h < 2500


def test_confusion_matrix_21_classes_gets_a_bigger_figure(tmp_path):
    emotions = ("anger", "disgust", "fear", "happy", "neutral", "sad", "sadness")
    names = [f"{e}_{i}" for e in emotions for i in ("lo", "mi", "hi")]
    assert len(names) == 21
    cm = [[10 if i == j else 1 for j in range(21)] for i in range(21)]
    big = png_size(plot_confusion_matrix(cm, names, tmp_path / "cm21.png", title="CREMA-D 21"))
    small = png_size(plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], tmp_path / "cm2.png"))
    assert big[0] > 1.5 * small[0] and big[1] > 1.5 * small[1]


def test_confusion_matrix_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "x.png")


def test_training_curves_from_trainer_log_history(tmp_path):
    out = plot_training_curves(trainer_like_log_history(), tmp_path / "curves.png")
    w, h = png_size(out)
    assert w > 1000 and h > 300
    assert out.stat().st_size > 20_000  # three panels with lines, not an empty canvas


@pytest.mark.parametrize(
    "history",
    [
        [],
        [{"loss": 1.0, "learning_rate": 1e-4, "grad_norm": 1.0, "epoch": 0.1, "step": 1}],  # a single point
        [{"train_runtime": 1.0, "train_loss": 1.0, "epoch": 1.0, "step": 1}],  # summary only, no logging steps
        [{"eval_loss": 1.0, "eval_ua": 0.5, "epoch": 1.0, "step": 3}],  # eval only, missing eval_wa
    ],
)
def test_training_curves_with_missing_parts(tmp_path, history):
    png_size(plot_training_curves(history, tmp_path / "curves.png"))


def test_per_class_recall(tmp_path):
    out = plot_per_class_recall({"neutral": 0.8, "happy": 0.25, "sad": None, "angry": 1.0}, tmp_path / "recall.png")
    w, h = png_size(out)
    assert w > 300 and h > 150

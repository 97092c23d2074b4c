"""Tests for ser_hf.reporting.plots: each figure is written as a real PNG, including edge cases.

The functions only write files, so the tests read the PNGs back and measure the drawn data by colour: bar
lengths, stacked shares, which panel holds a series. That checks what a reader of the figure sees, whatever
matplotlib API draws it.
"""

import struct

import matplotlib
import numpy as np
import pytest
from matplotlib import colors as mcolors
from matplotlib import image as mimage

from ser_hf.reporting.plots import (
    plot_confusion_matrix,
    plot_per_class_recall,
    plot_prediction_histogram,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SERIES_COLORS = ("C0", "C1", "C2")  # matplotlib's default colours of the first three lines of an axes


def png_size(path):
    """Width and height from the PNG header (IHDR is always the first chunk)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def pixels_of(path, color, tol=0.02):
    """Mask of the pixels drawn in `color` (anti-aliased edges excluded) in the PNG at `path`."""
    rgb = mimage.imread(path)[..., :3]
    return np.abs(rgb - np.array(mcolors.to_rgb(color))).max(axis=-1) < tol


def runs(indices):
    """Consecutive runs in a sorted array of indices."""
    return np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1) if len(indices) else []


def panel_pixels(path, colors=SERIES_COLORS, panels=3):
    """Pixels of `colors` in each of `panels` side-by-side panels (equal-width vertical strips)."""
    masks = [pixels_of(path, c) for c in colors]
    width = masks[0].shape[1]
    return [[int(m[:, k * width // panels:(k + 1) * width // panels].sum()) for m in masks] for k in range(panels)]


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
    loss, metrics, lr = panel_pixels(out)
    # Loss panel: train and eval loss; metrics: ua, wa and macro_f1; learning rate: one line.
    assert loss[0] > 100 and loss[1] > 100 and loss[2] == 0
    assert min(metrics) > 100
    assert lr[0] > 100 and lr[1] == lr[2] == 0


@pytest.mark.parametrize(
    "history, drawn",
    [
        ([], (False, False, False)),
        # a single point: the loss and the learning rate, each a lone marker
        ([{"loss": 1.0, "learning_rate": 1e-4, "grad_norm": 1.0, "epoch": 0.1, "step": 1}], (True, False, True)),
        # summary only, no logging steps: its train_loss is not a curve
        ([{"train_runtime": 1.0, "train_loss": 1.0, "epoch": 1.0, "step": 1}], (False, False, False)),
        # eval only, missing eval_wa: eval loss and UA
        ([{"eval_loss": 1.0, "eval_ua": 0.5, "epoch": 1.0, "step": 3}], (True, True, False)),
    ],
)
def test_training_curves_with_missing_parts(tmp_path, history, drawn):
    out = plot_training_curves(history, tmp_path / "curves.png")
    png_size(out)
    assert tuple(sum(panel) > 10 for panel in panel_pixels(out)) == drawn


def test_per_class_recall_bars_are_as_long_as_the_recalls(tmp_path):
    recalls = {"neutral": 0.8, "happy": 0.25, "sad": None, "angry": 1.0}
    out = plot_per_class_recall(recalls, tmp_path / "recall.png")
    w, h = png_size(out)
    assert w > 300 and h > 150
    blue = pixels_of(out, "tab:blue")
    bars = runs(np.flatnonzero(blue.any(axis=1)))  # top to bottom; sad's empty row draws no bar
    lengths = [int(blue[bar].sum(axis=1).max()) for bar in bars]
    assert len(lengths) == 3
    assert np.array(lengths) / lengths[2] == pytest.approx([0.8, 0.25, 1.0], abs=0.01)
    # Rows keep the dict's order top to bottom: sad's empty row sits between happy and angry.
    gaps = [bars[i + 1][0] - bars[i][-1] for i in range(2)]
    assert gaps[1] > 1.5 * gaps[0]


def stacked_shares(path, colors):
    """Per bar (left to right), each colour's share of the bar's height and its mean row (larger = lower).

    Bars are the columns mostly covered by the colours; legend patches cover far fewer rows of a column.
    """
    masks = [pixels_of(path, c) for c in colors]
    covered = sum(m.astype(int) for m in masks).sum(axis=0)
    result = []
    for bar in runs(np.flatnonzero(covered > 0.6 * covered.max())):
        middle = bar[len(bar) // 2]
        counts = np.array([m[:, middle].sum() for m in masks], dtype=float)
        rows = [np.flatnonzero(m[:, middle]).mean() if m[:, middle].any() else None for m in masks]
        result.append((counts / counts.sum(), rows))
    return result


@pytest.mark.parametrize("labels", [["neutral", "happy", "sad", "angry"], [f"class{i}" for i in range(21)]])
def test_prediction_histogram_stacks_each_evaluations_shares(tmp_path, labels):
    history = [{"step": s, "predicted": {name: (i + s) % 5 for i, name in enumerate(labels)}} for s in (5, 10, 15)]
    path = plot_prediction_histogram(history, labels, tmp_path / "hist.png")
    png_size(path)
    # tab10 up to 10 classes, tab20 above; CREMA-D's 21st class repeats the first colour.
    cmap = matplotlib.colormaps["tab20" if len(labels) > 10 else "tab10"]
    colors = [cmap(k) for k in range(min(len(labels), 20))]
    bars = stacked_shares(path, colors)
    assert len(bars) == len(history)
    for evaluation, (shares, _) in zip(history, bars):
        counts = np.zeros(len(colors))
        for i, name in enumerate(labels):
            counts[i % 20] += evaluation["predicted"][name]
        assert shares == pytest.approx(counts / counts.sum(), abs=0.01)


def test_prediction_histogram_puts_the_first_class_at_the_bottom(tmp_path):
    labels = ["neutral", "happy", "sad", "angry"]
    history = [{"step": 5, "predicted": {"neutral": 6, "happy": 2}},  # classes never predicted may be absent
               {"step": 10, "predicted": {"neutral": 0, "happy": 0, "sad": 1, "angry": 7}}]
    path = plot_prediction_histogram(history, labels, tmp_path / "hist.png")
    colors = [matplotlib.colormaps["tab10"](k) for k in range(4)]
    (first, first_rows), (second, second_rows) = stacked_shares(path, colors)
    assert first == pytest.approx([0.75, 0.25, 0, 0], abs=0.01)
    assert second == pytest.approx([0, 0, 0.125, 0.875], abs=0.01)
    assert first_rows[0] > first_rows[1] and second_rows[2] > second_rows[3]  # stacked in label order, bottom up


def test_prediction_histogram_without_evaluations_draws_no_bars(tmp_path):
    path = plot_prediction_histogram([], ["neutral", "happy"], tmp_path / "empty.png")
    png_size(path)
    assert not any(pixels_of(path, matplotlib.colormaps["tab10"](k)).any() for k in range(2))


def test_training_curves_mark_the_step_of_the_saved_model(tmp_path):
    # A dotted black line at the saved checkpoint's step, in every panel: the curves say which point is published.
    plain = plot_training_curves(trainer_like_log_history(), tmp_path / "plain.png")
    marked = plot_training_curves(trainer_like_log_history(), tmp_path / "marked.png", kept_step=20)
    width = png_size(plain)[0]

    def black_columns(path, k):
        strip = pixels_of(path, "black", tol=0.1)[:, k * width // 3:(k + 1) * width // 3]
        return strip.sum(axis=0)

    for k in range(3):
        added = black_columns(marked, k) - black_columns(plain, k)
        column = int(np.argmax(added))
        assert added[column] > 50  # a tall vertical line ...
        assert np.count_nonzero(added > 20) <= 6  # ... in one place, not a redrawn panel

"""PNG figures for the output folder: confusion matrix, training curves, per-class recall.

Every function writes one file and returns its path. Figures are built with matplotlib's object API
(`Figure`, no pyplot): nothing global changes (no backend switch, no figure registry to leak from), and it
renders without a display, as on training machines and CI.
"""

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ser_hf.evaluation.dimensional import concordance_cc
from ser_hf.storage import atomic_output

DPI = 120


def _save(fig, path):
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:] or "png", dpi=DPI, bbox_inches="tight")
    return path


def plot_confusion_matrix(cm, label_names, path, normalize: bool = False, title=None) -> Path:
    """Draw a confusion matrix (rows = true class, columns = predicted class).

    Args:
        cm: square matrix of counts, `len(label_names)` on each side (list of lists or array).
        label_names: class names in id order, shown on both axes.
        path: PNG file to write; parent folders are created.
        normalize: divide each row by its total, so that the diagonal shows per-class recall. Rows of
            classes without examples stay 0.
        title: figure title; defaults to "Confusion matrix" (with "(row-normalised)" when normalising).

    Returns:
        The path written.
    """
    cm = np.asarray(cm, dtype=float)
    n = len(label_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {n} labels")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)

    # About 0.5 inch per class keeps cell annotations legible from 4 classes (RAVDESS subsets) to 21 (CREMA-D).
    side = max(5.0, 0.5 * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
    vmax = 1.0 if normalize else max(cm.max(), 1.0)
    im = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalize else "count")

    ax.set_xticks(range(n), labels=label_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))

    fontsize = 9 if n <= 10 else 7
    for i in range(n):
        for j in range(n):
            value = cm[i, j]
            text = f"{value:.2f}" if normalize else f"{int(round(value))}"
            # White text on dark cells, black on light ones.
            color = "white" if value > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
    fig.tight_layout()
    return _save(fig, path)


def _series(entries, key):
    points = [(e["step"], e[key]) for e in entries if key in e and "step" in e and e[key] is not None]
    points = [(s, v) for s, v in points if isinstance(v, (int, float)) and math.isfinite(v)]
    return [p[0] for p in points], [p[1] for p in points]


def _line(ax, xs, ys, label):
    # A lone point would be invisible as a line.
    ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=label)


def plot_training_curves(
    log_history: list[dict], path, metric_names=("eval_ua", "eval_wa", "eval_macro_f1"), kept_step=None
) -> Path:
    """Plot loss, evaluation metrics and learning rate against the optimizer step.

    Args:
        log_history: `trainer.state.log_history`: training entries (`loss`, `learning_rate`, `step`, ...),
            evaluation entries (`eval_loss`, `eval_<metric>`, `step`, ...) and a final summary entry
            (`train_loss`, `train_runtime`, ...) that is ignored.
        path: PNG file to write.
        metric_names: evaluation keys to draw in the metrics panel; missing ones are skipped.
        kept_step: the step of the saved model (the best checkpoint with load_best_model_at_end), marked on every
            panel, so the curves show which point of training the published model is.

    Returns:
        The path written. Panels without data say so instead of failing, so a run that never evaluated
        (or logged a single step) still gets a figure.
    """
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    ax_loss, ax_metric, ax_lr = axes

    for key, label in (("loss", "train loss"), ("eval_loss", "eval loss")):
        xs, ys = _series(log_history, key)
        if xs:
            _line(ax_loss, xs, ys, label)
    ax_loss.set_title("Loss")

    for key in metric_names:
        xs, ys = _series(log_history, key)
        if xs:
            _line(ax_metric, xs, ys, key.removeprefix("eval_"))
    ax_metric.set_title("Evaluation metrics")
    if ax_metric.lines:
        # UA/WA/F1 live in [0, 1]; a fixed scale keeps runs comparable by eye. A CCC can be negative.
        lowest = min(float(np.min(line.get_ydata())) for line in ax_metric.lines)
        ax_metric.set_ylim(min(0.0, lowest - 0.02), 1.02)

    xs, ys = _series(log_history, "learning_rate")
    if xs:
        _line(ax_lr, xs, ys, "learning rate")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax_lr.set_title("Learning rate")

    for ax in axes:
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines and kept_step is not None:
            ax.axvline(kept_step, color="black", linestyle=":", linewidth=1.2, label=f"saved model (step {kept_step})")
        if ax.lines:
            steps = {x for line in ax.lines for x in line.get_xdata()}
            if len(steps) == 1:  # a lone step would get a fractional axis around it
                ax.set_xlim(min(steps) - 1, min(steps) + 1)
            ax.grid(alpha=0.3)
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class_recall(recalls: dict[str, float | None], path) -> Path:
    """Horizontal bar chart of recall per class.

    Args:
        recalls: class name -> recall in [0, 1], or None for a class absent from the evaluation split
            (drawn as an empty row marked "n/a"). Drawn top to bottom in the dict's order.
        path: PNG file to write.

    Returns:
        The path written.
    """
    names = list(recalls)
    values = [0.0 if recalls[k] is None else float(recalls[k]) for k in names]
    fig = Figure(figsize=(6, max(2.0, 0.35 * len(names) + 1.0)))
    ax = fig.subplots()
    ys = np.arange(len(names))
    ax.barh(ys, values, color="tab:blue")
    ax.set_yticks(ys, labels=names)
    ax.invert_yaxis()  # first label on top, as in the label list
    ax.set_xlim(0, 1.12)  # room for the value labels right of a full bar
    ax.set_xlabel("recall")
    ax.set_title("Per-class recall")
    for y, name, value in zip(ys, names, values):
        text = "n/a" if recalls[name] is None else f"{value:.2f}"
        ax.text(value + 0.01, y, text, va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_prediction_histogram(evaluations, label_names, path) -> Path:
    """Share of evaluation clips predicted as each class, at every evaluation (stacked bars).

    A healthy run spreads its predictions over the classes; a collapsed one shows one colour taking most of a
    bar.

    Args:
        evaluations: `TrainingDiagnostics.history`: dicts with `step` and `predicted` ({class: count}).
        label_names: class names in id order (legend and stacking order).
        path: PNG file to write.

    Returns:
        The path written.
    """
    fig = Figure(figsize=(max(6.0, 0.5 * len(evaluations) + 3.0), 4.5))
    ax = fig.subplots()
    if evaluations:
        steps = [str(e["step"]) for e in evaluations]
        counts = np.array([[e["predicted"].get(name, 0) for name in label_names] for e in evaluations], dtype=float)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        # tab20 keeps up to 20 classes apart (CREMA-D's 21 repeats one colour, with its name in the legend).
        colors = matplotlib.colormaps["tab20" if len(label_names) > 10 else "tab10"](np.arange(len(label_names)) % 20)
        bottom = np.zeros(len(evaluations))
        for i, name in enumerate(label_names):
            ax.bar(steps, shares[:, i], bottom=bottom, color=colors[i], label=name, width=0.8)
            bottom += shares[:, i]
        ax.set_ylim(0, 1)
        handles, names = ax.get_legend_handles_labels()  # reversed: the legend reads top-down like the stack
        ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  title="predicted")
    else:
        ax.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xlabel("evaluation at step")
    ax.set_ylabel("share of evaluation clips")
    ax.set_title("Predicted classes at each evaluation")
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_scores(rows, path, metric="ua", chance=None) -> Path:
    """UA (or another metric) of a probe on each hidden state alone: which layer carries the labels.

    Args:
        rows: `ser_hf.evaluation.probe_analysis.per_layer_scores` rows (layer, `<split>_<metric>` per split).
        path: PNG file to write.
        metric: the metric drawn, one bar per split and layer.
        chance: drawn as a dashed line when given (e.g. 1 / number of classes for UA).

    Returns:
        The path written.
    """
    splits = [key.removesuffix(f"_{metric}") for key in rows[0] if key.endswith(f"_{metric}")] if rows else []
    fig = Figure(figsize=(max(5.0, 0.45 * len(rows) * max(len(splits), 1) + 2.0), 4.0))
    ax = fig.subplots()
    layers = np.arange(len(rows))
    width = 0.8 / max(len(splits), 1)
    for i, split in enumerate(splits):
        values = [row[f"{split}_{metric}"] for row in rows]
        ax.bar(layers + (i - (len(splits) - 1) / 2) * width, values, width=width, label=split)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(layers, labels=[str(row["layer"]) for row in rows])
    ax.set_xlabel("hidden state (0: input of the first transformer layer, k: output of layer k)")
    ax.set_ylabel(metric.upper())
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Probe on one hidden state: {metric.upper()} per layer")
    if splits or chance is not None:
        ax.legend(loc="best", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability_diagram(bins, path, ece=None, title=None) -> Path:
    """Reliability diagram: accuracy against top-label confidence per bin, with the share of clips per bin below.

    A calibrated model's bars sit on the diagonal; bars below it mean over-confidence (scores higher than the
    accuracy they deliver), above it under-confidence.

    Args:
        bins: `ser_hf.evaluation.calibration.reliability_bins` (lower, upper, count, accuracy, confidence).
        path: PNG file to write.
        ece: the expected calibration error, shown in the title when given.
        title: figure title; defaults to "Reliability diagram".

    Returns:
        The path written.
    """
    fig = Figure(figsize=(5.5, 6.5))
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lowers = np.array([b["lower"] for b in bins])
    widths = np.array([b["upper"] - b["lower"] for b in bins])
    filled = np.array([b["count"] > 0 for b in bins])
    accuracy = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    confidence = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    ax.bar(lowers[filled], accuracy[filled], width=widths[filled], align="edge", color="tab:blue",
           edgecolor="black", linewidth=0.5, label="accuracy")
    # The gap between each bin's mean confidence and its accuracy (the terms ECE averages), hatched and unfilled so
    # it never blends with the accuracy bar into a third colour: red above it (over-confident), orange inside it
    # (under-confident).
    gap = confidence - accuracy
    for side, color, label in ((gap > 0, "tab:red", "over-confident: mean score above accuracy"),
                               (gap < 0, "tab:orange", "under-confident: mean score below accuracy")):
        chosen = filled & side
        if chosen.any():
            ax.bar(lowers[chosen], gap[chosen], bottom=accuracy[chosen], width=widths[chosen], align="edge",
                   fill=False, hatch="///", edgecolor=color, linewidth=0.8, label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    heading = title or "Reliability diagram"
    ax.set_title(heading if ece is None else f"{heading} (ECE {100 * ece:.1f} %)")
    counts = np.array([b["count"] for b in bins], dtype=float)
    ax_count.bar(lowers, counts / max(counts.sum(), 1), width=widths, align="edge", color="gray", edgecolor="black",
                 linewidth=0.5)
    ax_count.set_xlabel("top-label confidence (score of the predicted class)")
    ax_count.set_ylabel("share of clips")
    fig.tight_layout()
    return _save(fig, path)


def plot_dimension_scatter(true, predicted, names, path, title=None) -> Path:
    """Predicted against true value, one panel per dimension (`--task dimensional`), with the identity line.

    Points on the dashed line are exact; a cloud flatter than the line is a model that regresses towards the mean
    (low CCC even where Pearson's r is fair).

    Args:
        true, predicted: (clips, dimensions) arrays, targets in [0, 1].
        names: dimension names in column order.
        path: PNG file to write.
        title: figure title; each panel shows its CCC.

    Returns:
        The path written.
    """
    true, predicted = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    fig = Figure(figsize=(4.2 * len(names), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    low = min(0.0, float(np.nanmin(predicted)) if predicted.size else 0.0)
    high = max(1.0, float(np.nanmax(predicted)) if predicted.size else 1.0)
    for i, (ax, name) in enumerate(zip(axes, names)):
        ax.scatter(true[:, i], predicted[:, i], s=12, alpha=0.6, color="tab:blue", edgecolors="none")
        ax.plot([low, high], [low, high], linestyle="--", color="gray", linewidth=1, label="prediction = truth")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ccc = concordance_cc(predicted[:, i], true[:, i]) if len(true) > 1 else None
        ax.set_title(name if ccc is None else f"{name} (CCC {ccc:.3f})")
        ax.set_xlabel(f"true {name} (0-1)")
        ax.set_ylabel(f"predicted {name}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


# Grey, outside tab10/tab20's colours, for windows the energy gate labelled silence.
SILENCE_COLOR = "#c8c8c8"


def _draw_waveform(ax, samples, sample_rate, buckets=2000):
    """Min/max envelope per time bucket: the look of the waveform at screen resolution, not 10^6 line points."""
    samples = np.asarray(samples, dtype=np.float32)
    n = max(1, min(buckets, len(samples)))
    edges = np.linspace(0, len(samples), n + 1).astype(int)
    lows = np.array([samples[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    highs = np.array([samples[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    ax.fill_between(edges[:-1] / sample_rate, lows, highs, color="tab:gray", linewidth=0.5)
    ax.set_xlim(0, len(samples) / sample_rate)
    ax.set_ylabel("amplitude")


def plot_waveform(samples, path, sample_rate=16_000, title=None) -> Path:
    """The waveform of one clip against time.

    Args:
        samples: 1-D audio samples.
        path: PNG file to write.
        sample_rate: samples per second of `samples`.
        title: figure title (default "Waveform").

    Returns:
        The path written.
    """
    fig = Figure(figsize=(9, 2.2))
    ax = fig.subplots()
    _draw_waveform(ax, samples, sample_rate)
    ax.set_xlabel("time (s)")
    ax.set_title(title or "Waveform")
    fig.tight_layout()
    return _save(fig, path)


def _segments(windows):
    """(left edge, width) per window: consecutive windows meet half-way between their centres, so overlapping
    windows tile the time axis once, from the first window's start to the last one's end."""
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    cuts = [windows[0]["start"]] + [(a + b) / 2 for a, b in zip(centres[:-1], centres[1:])] + [windows[-1]["end"]]
    return cuts[:-1], np.diff(cuts)


def plot_emotion_timeline(windows, label_names, path, samples=None, sample_rate=16_000, title=None) -> Path:
    """An emotion timeline: the top label of each window as a coloured band over the stacked class probabilities.

    Args:
        windows: `ser_hf.inference.timeline.emotion_timeline(...)["windows"]`: dicts with start, end, label and
            scores ({label: probability}, or None for a window gated as silence, drawn grey).
        label_names: class names in id order (colours and stacking order).
        path: PNG file to write.
        samples: the file's 16 kHz mono samples; when given, the waveform is drawn above on the same time axis.
        sample_rate: samples per second of `samples`.
        title: figure title (default "Emotion timeline").

    Returns:
        The path written.
    """
    rows = [("wave", 1.2)] if samples is not None else []
    rows += [("band", 0.35), ("stack", 2.2)]
    fig = Figure(figsize=(10, 1.0 + 1.2 * sum(h for _, h in rows)))
    axes = dict(zip([r for r, _ in rows], fig.subplots(len(rows), 1, sharex=True,
                                                       gridspec_kw={"height_ratios": [h for _, h in rows]})))
    colors = dict(zip(label_names, matplotlib.colormaps["tab20" if len(label_names) > 10 else "tab10"](
        np.arange(len(label_names)) % 20)))
    colors["silence"] = SILENCE_COLOR
    if samples is not None:
        _draw_waveform(axes["wave"], samples, sample_rate)
    if windows:
        lefts, widths = _segments(windows)
        axes["band"].bar(lefts, 1.0, width=widths, align="edge", color=[colors.get(w["label"], "black")
                                                                          for w in windows], linewidth=0)
        silent = np.array([w["scores"] is None for w in windows], dtype=float)
        # Hatched as well as grey: tab10's grey (the 8th class, e.g. surprised) would otherwise look alike.
        axes["band"].bar(lefts, silent, width=widths, align="edge", color=SILENCE_COLOR, hatch="//",
                         edgecolor="white", linewidth=0)
        bottom = np.zeros(len(windows))
        for name in label_names:
            shares = np.array([(w["scores"] or {}).get(name, 0.0) for w in windows])
            axes["stack"].bar(lefts, shares, width=widths, bottom=bottom, align="edge", color=colors[name],
                              label=name, linewidth=0)
            bottom += shares
        if silent.any():
            axes["stack"].bar(lefts, silent, width=widths, align="edge", color=SILENCE_COLOR, label="silence",
                              hatch="//", edgecolor="white", linewidth=0)
        axes["stack"].set_xlim(windows[0]["start"], windows[-1]["end"])
        handles, names = axes["stack"].get_legend_handles_labels()
        axes["stack"].legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes["band"].set_yticks([])
    axes["band"].set_ylabel("top", rotation=0, ha="right", va="center")
    axes["stack"].set_ylim(0, 1)
    axes["stack"].set_ylabel("probability")
    axes["stack"].set_xlabel("time (s)")
    fig.suptitle(title or "Emotion timeline")
    fig.tight_layout()
    return _save(fig, path)

"""Calibration in the reports: reliability diagram PNG, the card's ECE row and section, the cross-validation line."""

import json

import numpy as np
import pytest
from PIL import Image

from ser_hf.evaluation.calibration import calibration_summary, reliability_bins
from ser_hf.evaluation.fold_summary import collect_fold_results, summarize
from ser_hf.evaluation.metrics import compute_ser_metrics_from_confusion
from ser_hf.reporting.calibration_report import calibration_section
from ser_hf.reporting.crossval_report import markdown_table, write_crossval_report
from ser_hf.reporting.model_card import ModelCardInfo, render_model_card
from ser_hf.reporting.plots import plot_reliability_diagram

LABELS = ["neutral", "happy"]


def _metrics(ece=0.12, **extra):
    metrics = compute_ser_metrics_from_confusion([[3, 1], [0, 4]], LABELS)
    summary = calibration_summary([0.9] * 4 + [0.6] * 4, [1, 1, 1, 0, 1, 1, 1, 1])
    summary.pop("ece")
    return {**metrics, "num_examples": 8, "ece": ece, "calibration": summary, **extra}


def test_reliability_diagram_is_written(tmp_path):
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1, 200)
    bins = reliability_bins(conf, rng.uniform(size=200) < conf)
    path = plot_reliability_diagram(bins, tmp_path / "sub" / "reliability.png", ece=0.05)
    with Image.open(path) as image:
        assert image.width > 300 and image.height > 300
    # No clips at all (an empty split) still draws.
    assert plot_reliability_diagram(reliability_bins([], []), tmp_path / "empty.png").is_file()


def test_card_states_ece_and_temperature_scaling():
    results = {"validation": _metrics(ece=0.04, temperature=1.8, temperature_fitted_on="validation",
                                      ece_before_temperature=0.15),
               "test": _metrics(ece=0.07, temperature=1.8, temperature_fitted_on="validation",
                                ece_before_temperature=0.18)}
    section = calibration_section(results, "test", "test (fold 2)")
    assert "on test (fold 2): **7.0 %**" in section
    assert "mean top score is 75.0 % against an accuracy of 87.5 %" in section and "under-confident" in section
    assert "T = 1.800" in section
    assert "| validation (T was fitted on these clips: optimistic) | 15.0 % | 4.0 % |" in section
    assert "| test | 18.0 % | 7.0 % |" in section
    assert calibration_section({"validation": {"ua": 0.5}}, "validation") == ""  # older results: no section

    info = ModelCardInfo(model_id="m", base_model=None, dataset_name="Demo", dataset_id=None, dataset_license="mit",
                         label_names=LABELS, metrics=results["test"], split_name="test", split_description="d",
                         command="c", hyperparameters={}, num_train_examples=1, num_eval_examples=8,
                         sections=[section])
    card = render_model_card(info)
    assert "| ECE, expected calibration error of the top score (0 = calibrated; see Calibration) | 7.0 % |" in card
    assert "## Calibration" in card


def _write_fold(root, k, rows, metrics):
    fold = root / f"fold_{k}"
    fold.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):  # what finished_run looks for
        (fold / name).write_text("{}")
    (fold / "ser_results.json").write_text(json.dumps({"validation": metrics}))
    lines = ["path,speaker,true,predicted,confidence"] + [f"c{i}.wav,s{k},{t},{p},{c}" for i, (t, p, c) in enumerate(rows)]
    (fold / "predictions_validation.csv").write_text("\n".join(lines) + "\n")


def test_crossval_report_gives_ece_per_fold_and_pooled(tmp_path):
    # Fold 0: two clips at 0.9, one right -> ECE 0.4. Fold 1: two at 0.9, both right -> ECE 0.1.
    plain = {k: v for k, v in _metrics().items() if k not in ("ece", "calibration")}  # written before ECE existed
    _write_fold(tmp_path, 0, [("neutral", "neutral", 0.9), ("happy", "neutral", 0.9)], plain)
    _write_fold(tmp_path, 1, [("neutral", "neutral", 0.9), ("happy", "happy", 0.9)], plain)
    report = summarize(collect_fold_results(tmp_path, [0, 1]), LABELS)
    assert [row["ece"] for row in report["folds"]] == pytest.approx([0.4, 0.1])
    cal = report["calibration"]
    assert cal["mean"] == pytest.approx(0.25) and cal["std"] == pytest.approx(0.15)
    assert cal["pooled_ece"] == pytest.approx(0.9 - 0.75)  # 4 clips at 0.9, 3 right
    assert "ECE 25.0 +- 15.0 % over folds, 15.0 % pooled" in markdown_table(report)
    write_crossval_report(tmp_path, report)
    assert (tmp_path / "reliability_diagram.png").is_file()


def test_the_gap_bars_have_one_colour_per_direction_and_a_legend(tmp_path):
    # Over-confident bins get red hatching above the accuracy bar, under-confident ones orange inside it; the
    # hatching is unfilled, so no third, blended colour appears that the legend would not explain.
    from matplotlib import colors as mcolors
    from matplotlib import image as mimage

    def share(path, color):
        rgb = mimage.imread(path)[..., :3]
        return float((np.abs(rgb - np.array(mcolors.to_rgb(color))).max(axis=-1) < 0.05).mean())

    def bins(accuracies):
        return [{"lower": i / 10, "upper": (i + 1) / 10, "count": 10, "accuracy": a, "confidence": (i + 0.5) / 10}
                for i, a in enumerate(accuracies)]

    over = plot_reliability_diagram(bins([0.0] * 10), tmp_path / "over.png")
    under = plot_reliability_diagram(bins([1.0] * 10), tmp_path / "under.png")
    assert share(over, "tab:red") > 0.002 and share(over, "tab:orange") < 0.0005
    assert share(under, "tab:orange") > 0.002 and share(under, "tab:red") < 0.0005

"""What a --task dimensional run writes for people: the card's CCC model-index and scaling sentence, the results and
cross-validation tables, the per-clip CSV and the scatter plot."""

import dataclasses

import numpy as np
import pytest
from huggingface_hub import ModelCard
from matplotlib.image import imread

from ser_hf.config import DataArguments
from ser_hf.corpora import CORPORA
from ser_hf.evaluation.dimensional import compute_dimensional_metrics
from ser_hf.evaluation.fold_summary import summarize
from ser_hf.labels import DIMENSIONS
from ser_hf.reporting.crossval_report import markdown_table
from ser_hf.reporting.dimensional_report import (
    dimension_scaling,
    dimensional_results_table,
    read_dimensional_predictions,
    write_dimensional_predictions_csv,
)
from ser_hf.reporting.model_card import render_model_card
from ser_hf.reporting.plots import plot_dimension_scatter
from tests.reporting.test_model_card import make_info

RNG = np.random.default_rng(0)
TRUE = RNG.uniform(size=(20, 3))
PREDICTED = np.clip(TRUE + 0.15 * RNG.standard_normal((20, 3)), 0, 1)


def _metrics(predicted=PREDICTED, true=TRUE):
    return compute_dimensional_metrics(predicted, true, DIMENSIONS, train_mean=[0.5, 0.5, 0.5])


def _card(metrics):
    return render_model_card(dataclasses.replace(
        make_info(), label_names=list(DIMENSIONS), metrics=metrics, task="dimensional",
        dimension_scaling="Targets: ratings on a 1-5 scale, each scaled to 0-1 as (rating - 1) / 4."))


def test_the_card_reports_ccc_per_dimension_and_how_labels_were_scaled():
    metrics = _metrics()
    text = _card(metrics)
    card = ModelCard(text)
    results = {r.metric_name: r for r in card.data.eval_results}
    assert set(results) == {"CCC arousal", "CCC dominance", "CCC valence", "CCC (mean over the dimensions)"}
    assert all(r.metric_type == "ccc" for r in results.values())
    assert results["CCC valence"].metric_value == round(metrics["ccc_valence"], 4)
    assert results["CCC (mean over the dimensions)"].metric_value == round(metrics["ccc"], 4)
    assert card.data.metrics == ["ccc", "pearsonr", "mse"]
    assert "scaled to 0-1 as (rating - 1) / 4" in text and "problem_type: regression" in text
    assert f"| **mean** | **{metrics['ccc']:.3f}** |" in text and f"{metrics['baseline_mse']:.3f} |" in text
    assert "UA, unweighted accuracy" not in text and "## Outputs" in text
    assert "forced into one of them" not in text  # the classifier's limitation does not apply


def test_the_scaling_sentence_names_the_corpus_range():
    assert "(rating - 1) / 6" in dimension_scaling(DataArguments(corpus="manifest", manifest="m.csv",
                                                                 dimension_range="1,7"))
    assert "already on a 0-1 scale" in dimension_scaling(DataArguments(corpus="manifest", manifest="m.csv"))
    rated = next(name for name, spec in CORPORA.items() if spec.dimension_range is not None)
    assert CORPORA[rated].display_name in dimension_scaling(DataArguments(corpus=rated))


def test_results_table_and_predictions_csv_round_trip(tmp_path):
    metrics = _metrics()
    table = dimensional_results_table({"validation": metrics}, tmp_path)
    assert f"{metrics['ccc']:8.3f}" in table and f"MSE {metrics['baseline_mse']:.4f}" in table
    rows = [{"path": str(tmp_path / f"c{i}.wav"), "speaker": "s1",
             **{f"true_{n}": TRUE[i, k] for k, n in enumerate(DIMENSIONS)},
             **{f"pred_{n}": PREDICTED[i, k] for k, n in enumerate(DIMENSIONS)}} for i in range(20)]
    path = write_dimensional_predictions_csv(rows, tmp_path / "p.csv", tmp_path, DIMENSIONS)
    read, true, predicted = read_dimensional_predictions(path, DIMENSIONS)
    assert read[0]["path"] == "c0.wav"  # relative to the corpus folder, as the emotion CSV
    np.testing.assert_allclose(true, TRUE)
    np.testing.assert_allclose(predicted, PREDICTED)


def test_the_scatter_plot_is_written_with_one_panel_per_dimension(tmp_path):
    path = plot_dimension_scatter(TRUE, PREDICTED, DIMENSIONS, tmp_path / "s.png", title="validation")
    height, width = imread(path).shape[:2]
    assert width > 2.5 * height  # three square panels side by side


def _fold(k, predicted, true):
    return {**_metrics(predicted, true), "speakers": [f"s{k}"],
            "values": {"true": true.tolist(), "predicted": predicted.tolist()}}


def test_crossval_summary_and_table_give_ccc_mean_and_std():
    folds = {0: _fold(0, PREDICTED[:10], TRUE[:10]), 1: _fold(1, PREDICTED[10:], TRUE[10:])}
    report = summarize(folds, list(DIMENSIONS))
    assert report["task"] == "dimensional" and [row["fold"] for row in report["folds"]] == [0, 1]
    cccs = [folds[k]["ccc"] for k in (0, 1)]
    assert report["summary"]["ccc"] == {"mean": pytest.approx(np.mean(cccs)), "std": pytest.approx(np.std(cccs))}
    assert report["pooled"]["ccc"] == pytest.approx(compute_dimensional_metrics(PREDICTED, TRUE)["ccc"])
    assert "values" not in report["folds"][0]  # the clips stay in the folds' CSVs
    table = markdown_table(report)
    summary = report["summary"]["ccc"]
    assert f"| {summary['mean']:.3f} +- {summary['std']:.3f} |" in table
    assert "| fold | held-out speakers | clips | CCC arousal | CCC dominance | CCC valence | CCC mean |" in table
    assert f"Pooled over all 20 held-out clips: CCC {report['pooled']['ccc']:.3f}" in table

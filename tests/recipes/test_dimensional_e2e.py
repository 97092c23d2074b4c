"""End-to-end --task dimensional on a generated manifest corpus (arousal, valence, dominance on a 1-5 scale): CCC in
the results and on the card, a regression checkpoint whose pipeline() values are the reported ones, predict, ONNX
export, `ser-hf evaluate`, and a 2-fold cross-validation reporting CCC mean +- std."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from transformers import pipeline

from ser_hf.commands import crossval
from ser_hf.commands.predict import main as predict_main
from ser_hf.evaluation.dimensional import compute_dimensional_metrics
from ser_hf.inference.onnx_export import export_onnx
from ser_hf.labels import DIMENSIONS
from tests.conftest import evaluate, tiny_run_args, train, write_tone

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "recipes/configs/custom_small.yaml"  # metric_for_best_model: ua, which the task turns into ccc
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rated_corpus(tmp_path_factory):
    """6 speakers x 6 clips, rated 1-5; the tone's pitch follows arousal, so there is something to learn."""
    root = tmp_path_factory.mktemp("rated")
    rng = np.random.default_rng(0)
    rows = []
    for speaker in range(6):
        for clip in range(6):
            arousal, valence = rng.uniform(1, 5, 2)
            path = write_tone(root / f"spk{speaker}" / f"c{clip}.wav", 0.5 + 0.1 * (clip % 3), 120 + 80 * arousal,
                              seed=100 * speaker + clip)
            rows.append({"path": str(path.relative_to(root)), "label": "speech", "speaker": f"spk{speaker}",
                         "arousal": f"{arousal:.2f}", "valence": f"{valence:.2f}",
                         "dominance": f"{(arousal + valence) / 2:.2f}"})
    with open(root / "corpus.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def _args(corpus, output_dir, **overrides):
    fields = dict(manifest=corpus / "corpus.csv", task="dimensional", dimension_range="1,5", n_folds=3, max_steps=10,
                  eval_strategy="steps", eval_steps=5, save_strategy="steps", save_steps=5,
                  per_device_eval_batch_size=4, learning_rate="1e-3", auto_mixed_precision=False, scan_workers=1,
                  early_stopping_patience=0, seed=1)
    return tiny_run_args(corpus, output_dir, corpus="manifest", config=CONFIG, **{**fields, **overrides})


@pytest.fixture(scope="module")
def trained(rated_corpus, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("dimensional_run")
    results = train(_args(rated_corpus, output_dir, fold=0, test_fold=1))
    return output_dir, results


def _predictions(output_dir, split="validation"):
    with open(output_dir / f"predictions_{split}.csv") as handle:
        return list(csv.DictReader(handle))


def test_the_run_reports_ccc_per_dimension_on_results_and_card(trained):
    output_dir, results = trained
    assert set(results) == {"validation", "test"}
    saved = json.loads((output_dir / "ser_results.json").read_text())
    for split, metrics in results.items():
        assert saved[split]["ccc"] == pytest.approx(metrics["ccc"])
        assert metrics["dimensions"] == list(DIMENSIONS) and metrics["num_examples"] == 12
        per = [metrics[f"ccc_{name}"] for name in DIMENSIONS]
        assert all(-1 <= value <= 1 for value in per) and metrics["ccc"] == pytest.approx(np.mean(per))
        assert metrics["baseline_ccc"] == 0.0 and metrics["baseline_mse"] > 0
    # The CSV's values give back the reported scores (rounding to 6 decimals aside).
    rows = _predictions(output_dir, "test")
    true = np.array([[float(row[f"true_{name}"]) for name in DIMENSIONS] for row in rows])
    predicted = np.array([[float(row[f"pred_{name}"]) for name in DIMENSIONS] for row in rows])
    assert compute_dimensional_metrics(predicted, true)["ccc"] == pytest.approx(results["test"]["ccc"], abs=1e-4)
    assert true.min() >= 0 and true.max() <= 1  # 1-5 ratings scaled to 0-1
    config = json.loads((output_dir / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "arousal", "1": "dominance",
                                                                             "2": "valence"}
    card = ModelCard.load(output_dir / "README.md")
    ccc = {m.metric_name: m.metric_value for m in card.data.eval_results if m.metric_type == "ccc"}
    assert ccc["CCC (mean over the dimensions)"] == pytest.approx(results["test"]["ccc"], abs=1e-4)  # the test fold
    assert ccc["CCC valence"] == pytest.approx(results["test"]["ccc_valence"], abs=1e-4) and len(ccc) == 4
    assert "each scaled to 0-1 as (rating - 1) / 4" in card.text
    assert "best ccc" in card.text  # the config's metric_for_best_model ua became ccc
    assert (output_dir / "dimensions_scatter_test.png").is_file() and not (output_dir / "confusion_matrix.png").exists()
    assert json.loads((output_dir / "trainer_state.json").read_text())["best_metric"] is not None


def test_pipeline_gives_the_reported_values(trained, rated_corpus):
    output_dir, _ = trained
    classifier = pipeline("audio-classification", model=str(output_dir), device="cpu")
    rows = _predictions(output_dir)
    assert len(rows) == 12 and {row["speaker"] for row in rows} == {"spk0", "spk1"}  # fold 0's two speakers
    for row in rows:
        values = {s["label"]: s["score"] for s in classifier(str(rated_corpus / row["path"]), top_k=3)}
        assert set(values) == set(DIMENSIONS)
        for name in DIMENSIONS:
            assert values[name] == pytest.approx(float(row[f"pred_{name}"]), abs=1e-4)
    # No softmax: the three values do not form a distribution.
    assert sum(values.values()) != pytest.approx(1.0, abs=1e-3)


def test_predict_prints_the_values_and_onnx_gives_the_same(trained, rated_corpus, tmp_path, capsys):
    output_dir, _ = trained
    row = _predictions(output_dir)[0]
    clip = rated_corpus / row["path"]
    capsys.readouterr()
    # The clips are tones, which the voice-activity check would answer "no speech detected".
    assert predict_main([str(output_dir), str(clip), "--vad", "false", "--output", str(tmp_path / "p.csv")]) == 0
    printed = capsys.readouterr().out
    shown = re.search(r"arousal (-?\d\.\d\d) dominance (-?\d\.\d\d) valence (-?\d\.\d\d)", printed)
    assert shown, printed
    assert [float(v) for v in shown.groups()] == [round(float(row[f"pred_{n}"]), 2) for n in DIMENSIONS]
    with open(tmp_path / "p.csv") as handle:
        [torch_row] = list(csv.DictReader(handle))
    assert "label" not in torch_row
    for name in DIMENSIONS:
        assert float(torch_row[name]) == pytest.approx(float(row[f"pred_{name}"]), abs=1e-4)

    report = export_onnx(output_dir, tmp_path / "onnx")  # parity on the run's validation clips
    assert report["passed"] and report["fp32"]["regression"] and report["clips"].startswith("8 validation clips")
    assert predict_main([str(tmp_path / "onnx"), str(clip), "--backend", "onnx", "--vad", "false", "--output",
                         str(tmp_path / "onnx.csv")]) == 0
    with open(tmp_path / "onnx.csv") as handle:
        [onnx_row] = list(csv.DictReader(handle))
    for name in DIMENSIONS:
        assert float(onnx_row[name]) == pytest.approx(float(torch_row[name]), abs=1e-4)


def test_evaluate_scores_the_saved_model_as_training_did(trained, tmp_path, capsys):
    output_dir, results = trained
    evaluated = evaluate(["--model", str(output_dir), "--output_dir", str(tmp_path)])
    for split in ("validation", "test"):
        assert evaluated[split]["ccc"] == pytest.approx(results[split]["ccc"], abs=1e-5)
        assert evaluated[split]["mse_arousal"] == pytest.approx(results[split]["mse_arousal"], abs=1e-6)
        assert [r["pred_valence"] for r in _predictions(tmp_path, split)] == \
            [r["pred_valence"] for r in _predictions(output_dir, split)]
    assert (tmp_path / "dimensions_scatter_validation.png").is_file()
    assert "CCC" in capsys.readouterr().out


def test_crossval_over_two_folds_reports_ccc_mean_and_std(rated_corpus, tmp_path):
    out = tmp_path / "cv"
    args = _args(rated_corpus, out, fold=None, max_steps=4, eval_steps=2, save_steps=2)[1:]  # without the config
    assert crossval.main([str(CONFIG), *args, "--folds", "0,1"]) == 0
    report = json.loads((out / "crossval_results.json").read_text())
    assert report["task"] == "dimensional" and [row["fold"] for row in report["folds"]] == [0, 1]
    assert "baseline" not in report  # no SVM for a regression: each fold's training-mean MSE instead
    folds = [json.loads((out / f"fold_{k}" / "ser_results.json").read_text())["validation"] for k in (0, 1)]
    assert report["summary"]["ccc"]["mean"] == pytest.approx(np.mean([f["ccc"] for f in folds]))
    assert report["summary"]["ccc"]["std"] == pytest.approx(np.std([f["ccc"] for f in folds]))
    assert report["pooled"]["num_examples"] == 24
    table = (out / "crossval_results.md").read_text()
    mean = report["summary"]["ccc"]
    assert f"{mean['mean']:.3f} +- {mean['std']:.3f}" in table and "CCC arousal" in table
    assert (out / "dimensions_scatter.png").is_file()

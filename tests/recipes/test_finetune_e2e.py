"""End-to-end: the finetune recipe on generated RAVDESS-layout audio with tiny random models."""

import csv
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import pipeline

from ser_hf.errors import UsageError
from ser_hf.reporting.hub import files_to_upload
from tests.conftest import TINY_ENCODER, evaluate, pretrained_model_args, tiny_run_args, train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[("group", "max_length"), ("layer", "longest")], ids=["groupnorm", "layernorm"])
def trained(request, ravdess_tree, tmp_path_factory):
    norm, padding = request.param
    output_dir = tmp_path_factory.mktemp(f"run_{norm}")
    results = train(tiny_run_args(
        ravdess_tree, output_dir, config=ROOT / "recipes/configs/ravdess.yaml",
        model_config_overrides={**TINY_ENCODER, "feat_extract_norm": norm}, test_fold=2, padding=padding,
        max_steps=12, gradient_accumulation_steps=1, per_device_eval_batch_size=4, learning_rate="1e-3",
        lr_scheduler_type="warmup_stable_decay", warmup_steps=0.1, eval_strategy="steps", eval_steps=6,
        save_strategy="steps", save_steps=6, load_best_model_at_end=True, metric_for_best_model="ua", logging_steps=2,
        remove_unused_columns=False, report_to="tensorboard", seed=1, early_stopping_patience=3,
        class_weighting="inverse", **({"augmentation": "seed21"} if norm == "layer" else {})))
    return output_dir, results


def test_output_dir_is_hub_ready(trained):
    output_dir, results = trained
    for name in ["model.safetensors", "config.json", "preprocessor_config.json", "README.md", "ser_results.json",
                 "confusion_matrix.png", "confusion_matrix_normalized.png", "training_curves.png",
                 "per_class_recall.png", "predictions_validation.csv", "predictions_test.csv", "diagnostics.json",
                 "prediction_histogram.png", "error_analysis_validation.json", "error_analysis_test.json",
                 "data_args.json"]:
        assert (output_dir / name).is_file(), name
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"]["4"] == "angry" and config["label2id"]["surprised"] == 7
    counts = json.loads((output_dir / "class_counts.json").read_text())
    assert sum(counts["validation"].values()) == results["validation"]["num_examples"]
    assert list(counts["train"]) == [config["id2label"][str(i)] for i in range(8)]
    assert list(output_dir.glob("runs/*/events.out.tfevents.*")), "report_to tensorboard wrote no event file"
    uploaded = files_to_upload(output_dir)
    assert "training_args.bin" not in uploaded and not any(f.startswith("checkpoint-") for f in uploaded)
    assert "data_args.json" not in uploaded  # local corpus paths stay local
    diagnostics = json.loads((output_dir / "diagnostics.json").read_text())
    assert [e["step"] for e in diagnostics["evaluations"]] == [6, 12]  # one histogram per evaluation
    assert all(sum(e["predicted"].values()) == 16 for e in diagnostics["evaluations"])
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= set(uploaded)

    card = ModelCard.load(output_dir / "README.md")
    assert card.data.pipeline_tag == "audio-classification" and card.data.library_name == "transformers"
    assert card.data.license == "cc-by-nc-sa-4.0"
    ua = results["test"]["ua"]  # the card's headline: the test fold, which took no part in model selection
    reported = [m.metric_value for m in card.data.eval_results if m.metric_type == "recall"]
    assert reported and reported[0] == pytest.approx(ua, abs=1e-3)
    assert "recipes/finetune.py" in card.text


def test_splits_are_speaker_independent(trained):
    output_dir, results = trained
    speakers = {}
    for split in ("validation", "test"):
        with open(output_dir / f"predictions_{split}.csv") as handle:
            speakers[split] = {row["speaker"] for row in csv.DictReader(handle)}
    assert len(speakers["validation"]) == 2 and len(speakers["test"]) == 2
    assert not speakers["validation"] & speakers["test"]
    assert results["validation"]["num_examples"] == 16 and results["test"]["num_examples"] == 16


def test_reported_metrics_are_what_the_pipeline_gives(trained, ravdess_tree):
    output_dir, results = trained
    classifier = pipeline("audio-classification", model=str(output_dir), device="cpu")
    with open(output_dir / "predictions_validation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert not any(Path(row["path"]).is_absolute() for row in rows)  # pushed with the model: no local layout
    agree = [classifier(str(ravdess_tree / row["path"]), top_k=1)[0]["label"] == row["predicted"] for row in rows]
    assert all(agree), f"{agree.count(False)} of {len(rows)} clips disagree"
    accuracy = sum(row["true"] == row["predicted"] for row in rows) / len(rows)
    assert accuracy == pytest.approx(results["validation"]["wa"])


def test_predict_cli_prints_emotions_and_writes_csv(trained, ravdess_tree, tmp_path):
    output_dir, _ = trained
    with open(output_dir / "predictions_validation.csv") as handle:
        clip = str(ravdess_tree / next(csv.DictReader(handle))["path"])
    out_csv = tmp_path / "preds.csv"
    # The corpus is tones: --vad false, or the voice-activity check answers "no speech detected".
    proc = subprocess.run([sys.executable, str(ROOT / "recipes/predict.py"), str(output_dir), clip, "--top_k", "2",
                           "--vad", "false", "--output", str(out_csv)], capture_output=True, text=True, check=True)
    assert Path(clip).name in proc.stdout
    with open(out_csv) as handle:
        row = next(csv.DictReader(handle))
    assert row["label"] in {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
    assert len(row["top_k"].split(";")) == 2


def test_run_sh_ravdess_fine_tunes_a_pretrained_folder(ravdess_tree, tmp_path):
    # The user's command, end to end: run.sh -> ravdess.yaml -> from_pretrained (a local tiny encoder stands in
    # for facebook/wav2vec2-base, which cannot be downloaded here) with the feature encoder frozen.
    from ser_hf.config import ModelArguments
    from ser_hf.models.encoders import build_model

    encoder_dir = tmp_path / "tiny-wav2vec2"
    encoder, feature_extractor = build_model(
        ModelArguments(model_name_or_path=None, model_type="wav2vec2", model_config_overrides=dict(TINY_ENCODER)),
        {0: "x", 1: "y"}, {"x": 0, "y": 1})
    encoder.save_pretrained(encoder_dir)
    feature_extractor.save_pretrained(encoder_dir)
    output_dir = tmp_path / "out"
    args = tiny_run_args(ravdess_tree, output_dir, corpus=None, **pretrained_model_args(encoder_dir), fold=1,
                         max_steps=3, per_device_train_batch_size=4, gradient_accumulation_steps=1, eval_strategy="no",
                         save_strategy="no", load_best_model_at_end=False, early_stopping_patience=0)
    proc = subprocess.run(["bash", str(ROOT / "run.sh"), "ravdess", *args], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validation" in proc.stdout and "UA" in proc.stdout
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"]["0"] == "neutral"
    card = (output_dir / "README.md").read_text()
    assert "bash run.sh ravdess" in card  # the command the user typed is on the card
    assert f"base_model: {encoder_dir}" not in card  # a local path is no Hub base model


def test_evaluate_recipe_reproduces_the_run_and_analyses_errors(trained, tmp_path):
    # As a user runs it: a subprocess from the repo root (recipes/ is first on sys.path, and nothing there may shadow a library).
    output_dir, results = trained
    proc = subprocess.run([sys.executable, "recipes/evaluate_model.py", "--model", str(output_dir), "--output_dir",
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Most confused pairs (validation" in proc.stdout
    for split in ("validation", "test"):
        with open(output_dir / f"predictions_{split}.csv") as a, open(tmp_path / f"predictions_{split}.csv") as b:
            trained_rows, evaluated_rows = list(csv.DictReader(a)), list(csv.DictReader(b))
        assert [(r["path"], r["predicted"]) for r in evaluated_rows] == [(r["path"], r["predicted"]) for r in trained_rows]
        analysis = json.loads((tmp_path / f"error_analysis_{split}.json").read_text())
        wrong = sum(r["true"] != r["predicted"] for r in evaluated_rows)
        assert sum(p["count"] for p in analysis["most_confused_pairs"]) == wrong
        assert set(analysis["per_speaker"]) == {r["speaker"] for r in evaluated_rows}
    evaluated = json.loads((tmp_path / "ser_results.json").read_text())
    assert evaluated["validation"]["ua"] == pytest.approx(results["validation"]["ua"])


def test_run_sh_demo_keeps_baseline_and_example_clip_on_the_chosen_fold(ravdess_tree, tmp_path):
    # `bash run.sh demo --fold 0 --data_dir X` once ran the SVM on data/demo fold 5 and classified a hard-coded
    # Actor_24 clip, which --fold 0 had put in the training set.
    output_dir = tmp_path / "demo"
    overrides = json.dumps({**TINY_ENCODER, "feat_extract_norm": "layer"})
    args = ["--corpus", "ravdess", "--data_dir", str(ravdess_tree), "--download", "false", "--n_folds", "4",
            "--fold", "0", "--model_config_overrides", overrides, "--max_steps", "2", "--eval_strategy", "no",
            "--save_strategy", "no", "--load_best_model_at_end", "false", "--output_dir", str(output_dir),
            "--scan_workers", "1"]
    proc = subprocess.run(["bash", str(ROOT / "run.sh"), "demo", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The card's command pastes into a shell as it is: the JSON argument survives quoting.
    card_command = (output_dir / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[0]
    assert shlex.split(card_command) == ["bash", "run.sh", "demo", *args]
    held_out = {"Actor_01", "Actor_02"}  # fold 0 of 4 folds over 8 actors
    baseline = json.loads((tmp_path / "demo_baseline_svm" / "baseline_results.json").read_text())
    assert [f["fold"] for f in baseline["folds"]] == [0] and set(baseline["folds"][0]["eval_speakers"]) == held_out
    example = proc.stdout.strip().splitlines()[-1].split()[0]  # the predict table's row for the example clip
    assert example.endswith(("-01.wav", "-02.wav")), proc.stdout[-2000:]  # RAVDESS names end with the actor


def test_evaluate_refuses_speakers_the_model_was_trained_on(trained, tmp_path):
    # The model held out fold 3 (validation) and fold 2 (test); fold 0's actors were in its training split.
    output_dir, _ = trained
    with pytest.raises(UsageError, match=r"2 of the evaluated speakers were in the model's training split "
                                         r"\(Actor_01, Actor_02\).*--allow_seen_speakers"):
        evaluate(["--model", str(output_dir), "--fold", "0", "--output_dir", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()  # refused before anything was written
    results = evaluate(["--model", str(output_dir), "--fold", "0", "--split", "validation", "--allow_seen_speakers",
                        "--output_dir", str(tmp_path / "allowed")])
    saved = json.loads((tmp_path / "allowed" / "ser_results.json").read_text())
    assert saved["validation"]["seen_speakers"] == ["Actor_01", "Actor_02"] == results["validation"]["seen_speakers"]


def test_evaluate_reads_a_run_recorded_before_the_corpus_registry(trained, tmp_path):
    # Older runs wrote CREMA-D's `labels: 21` into every data_args.json; a RAVDESS model must still evaluate.
    output_dir = Path(shutil.copytree(trained[0], tmp_path / "old_run"))
    recorded = json.loads((output_dir / "data_args.json").read_text())
    (output_dir / "data_args.json").write_text(json.dumps({**recorded, "labels": 21}))
    results = evaluate(["--model", str(output_dir), "--split", "test", "--output_dir", str(tmp_path / "eval")])
    assert results["test"]["num_examples"] == 16

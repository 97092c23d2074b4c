"""Selecting confident pseudo-labels and reporting them per class, on synthetic scores."""

import csv
import json
from pathlib import Path

import pytest

from ser_hf.experiments.pseudo_labels import pseudo_label_summary, select_confident, training_rows
from ser_hf.reporting.pseudo_report import (
    PSEUDO_ROUNDS_FILE,
    pseudo_card_section,
    pseudo_crossval_markdown,
    pseudo_crossval_summary,
    write_pseudo_labels_csv,
)

LABELS = ["neutral", "happy", "sad"]


def _scored(held_back=False):
    rows = [("a", "happy", 0.95, "happy"), ("b", "happy", 0.90, "sad"), ("c", "sad", 0.89, "sad"),
            ("d", "neutral", 0.99, "neutral"), ("e", None, None, "sad")]
    scored = []
    for name, label, confidence, truth in rows:
        row = {"path": f"/pool/{name}.wav", "speaker": None, "duration": 1.0, "label": label,
               "confidence": confidence, "error": None if label else "too short"}
        scored.append({**row, "held_back_label": truth} if held_back else row)
    return scored


def test_clips_at_or_above_the_threshold_are_selected_and_errors_never():
    chosen = select_confident(_scored(), 0.9)
    assert [row["path"][-5] for row in chosen] == ["a", "b", "d"]  # 0.90 counts, 0.89 does not
    assert [row["path"][-5] for row in select_confident(_scored(), 0.5)] == ["a", "b", "c", "d"]


def test_per_class_report_counts_and_confidences():
    scored = _scored()
    summary = pseudo_label_summary(scored, select_confident(scored, 0.9), LABELS, 0.9)
    assert summary["pool"] == 5 and summary["errors"] == 1 and summary["added"] == 3
    assert summary["per_class"]["happy"] == {"added": 2, "mean_confidence": 0.925, "min_confidence": 0.9}
    assert summary["per_class"]["sad"] == {"added": 0, "mean_confidence": None, "min_confidence": None}
    assert "accuracy_added" not in summary  # truly unlabeled audio: nothing to score the pseudo-labels against


def test_held_back_labels_score_the_pseudo_labels_but_do_not_choose_them():
    plain, known = _scored(), _scored(held_back=True)
    chosen = select_confident(known, 0.9)
    assert [r["path"] for r in chosen] == [r["path"] for r in select_confident(plain, 0.9)]
    summary = pseudo_label_summary(known, chosen, LABELS, 0.9)
    assert summary["per_class"]["happy"]["correct"] == 1  # b was labelled happy, held back as sad
    assert summary["accuracy_added"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["accuracy_pool"] == 0.75  # 3 of the 4 classified clips
    assert all(set(row) == {"path", "speaker", "label", "duration"} for row in training_rows(chosen))


def test_pseudo_label_csv_marks_what_was_added(tmp_path):
    path = write_pseudo_labels_csv(_scored(held_back=True), 0.9, tmp_path / "p.csv", relative_to="/pool")
    rows = list(csv.DictReader(path.open()))
    assert [(r["path"], r["added"]) for r in rows] == [("a.wav", "1"), ("b.wav", "1"), ("c.wav", "0"),
                                                        ("d.wav", "1"), ("e.wav", "0")]
    assert rows[4]["error"] == "too short" and rows[1]["held_back_label"] == "sad"


def _report(round0_ua, final_ua, added=3):
    scored = _scored()
    summary = pseudo_label_summary(scored, select_confident(scored, 0.9), LABELS, 0.9)
    return {"threshold": 0.9, "pool": {"description": "the audio files below `pool/`", "files": 6,
                                       "excluded_by_scan": 1},
            "rounds": [{"round": 0, "added": 0, "results": {"validation": {"ua": round0_ua}}},
                       {"round": 1, "added": added, "summary": summary, "results": {"validation": {"ua": final_ua}}}]}


def test_card_section_sets_round_zero_beside_the_final_model():
    text = pseudo_card_section(_report(0.5, 0.625))
    assert text.startswith("## Pseudo-labels")
    assert "| 0 (labeled only) | 0 | 50.0 % |" in text and "| 1 (this model) | 3 | 62.5 % |" in text
    assert "| happy | 2 | 0.925 | 0.900 |" in text and "at least 0.9 " in text and "6 files, 1 excluded" in text


def test_crossval_summary_pairs_each_folds_rounds(tmp_path):
    for fold, (before, after) in enumerate([(0.5, 0.6), (0.7, 0.6)]):
        (tmp_path / f"f{fold}").mkdir()
        (tmp_path / f"f{fold}" / PSEUDO_ROUNDS_FILE).write_text(json.dumps(_report(before, after)))
    summary = pseudo_crossval_summary({0: tmp_path / "f0", 1: tmp_path / "f1", 2: tmp_path / "no_pseudo"})
    assert [r["fold"] for r in summary["folds"]] == [0, 1]
    assert summary["round_0"]["mean"] == pytest.approx(0.6) and summary["final"]["mean"] == pytest.approx(0.6)
    assert summary["difference"] == pytest.approx({"mean": 0.0, "std": 0.1})
    assert "| 1 | 70.0 % | 60.0 % | -10.0 | 3 |" in pseudo_crossval_markdown(summary)
    assert pseudo_crossval_summary({0: tmp_path / "no_pseudo"}) is None


def test_crossval_never_validates_on_the_pool_fold(ravdess_tree, tmp_path, capsys):
    from ser_hf.commands import crossval

    config = Path(__file__).resolve().parents[2] / "recipes/configs/demo.yaml"
    argv = [str(config), "--corpus", "ravdess", "--data_dir", str(ravdess_tree), "--download", "false", "--n_folds", "4",
            "--model_name_or_path", "null", "--model_type", "wav2vec2", "--pseudo_pool_fold", "1",
            "--output_dir", str(tmp_path / "cv")]
    assert crossval.main([*argv, "--folds", "0,1"]) == 2
    assert "--folds 0,1: distinct folds in 0..3, without the pseudo-label pool fold 1" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()  # refused before any work


def test_a_rerun_without_resume_keeps_the_finished_rounds(tmp_path):
    from ser_hf.config import parse_config
    from ser_hf.errors import UsageError
    from ser_hf.experiments.training_run import _check_unfinished_rounds

    out = tmp_path / "run"
    round0 = out / "pseudo_round_0"
    round0.mkdir(parents=True)
    (round0 / "model.safetensors").write_bytes(b"x")
    (round0 / "config.json").write_text("{}")
    (round0 / "ser_results.json").write_text("{}")
    argv = ["--model_name_or_path", "null", "--model_type", "wav2vec2", "--unlabeled_dir", str(tmp_path / "pool"),
            "--output_dir", str(out)]
    _, data_args, training_args = parse_config(None, argv)
    with pytest.raises(UsageError, match=r"interrupted pseudo-labelled run \(pseudo_round_0\).*--resume true"):
        _check_unfinished_rounds(out, data_args, training_args)
    _, data_args, training_args = parse_config(None, [*argv, "--resume", "true"])
    _check_unfinished_rounds(out, data_args, training_args)  # asked to resume: round 0 is reused

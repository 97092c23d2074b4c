"""Tests for ser_hf.evaluation.error_analysis."""

import json

import pytest

from ser_hf.evaluation.error_analysis import confused_pairs, error_analysis
from ser_hf.reporting.results import format_error_analysis, write_error_analysis

LABELS = ["neutral", "happy", "sad"]


def _row(path, speaker, true, predicted, confidence):
    return {"path": path, "speaker": speaker, "true": true, "predicted": predicted, "confidence": confidence}


ROWS = [
    _row("/c/a1.wav", "A", "sad", "neutral", 0.9),
    _row("/c/a2.wav", "A", "sad", "neutral", 0.6),
    _row("/c/a3.wav", "A", "sad", "sad", 0.8),
    _row("/c/a4.wav", "A", "happy", "sad", 0.95),
    _row("/c/b1.wav", "B", "neutral", "neutral", 0.7),
    _row("/c/b2.wav", "B", "happy", "happy", 0.9),
    _row("/c/b3.wav", "B", "sad", "sad", 0.5),
]


def test_confused_pairs_most_frequent_first_with_share_of_true_class():
    pairs = confused_pairs(ROWS)
    assert pairs[0] == {"true": "sad", "predicted": "neutral", "count": 2, "share_of_true": pytest.approx(0.5)}
    assert pairs[1]["true"] == "happy" and pairs[1]["predicted"] == "sad" and pairs[1]["count"] == 1
    assert len(confused_pairs(ROWS, top=1)) == 1


def test_per_speaker_scores_and_confidently_wrong():
    analysis = error_analysis(ROWS, LABELS)
    assert analysis["per_speaker"]["B"] == {"ua": 1.0, "wa": 1.0, "clips": 3}
    assert analysis["per_speaker"]["A"]["wa"] == pytest.approx(0.25)
    assert analysis["per_speaker"]["A"]["ua"] == pytest.approx((1 / 3 + 0.0) / 2, abs=1e-4)  # sad 1/3, happy 0
    assert [r["path"] for r in analysis["confidently_wrong"]] == ["/c/a4.wav", "/c/a1.wav", "/c/a2.wav"]
    assert analysis["wa"] == pytest.approx(4 / 7)
    text = format_error_analysis(analysis, "validation")
    assert "sad -> neutral" in text and "Weakest speaker: A" in text


def test_written_analysis_has_paths_relative_to_the_corpus(tmp_path):
    path, _ = write_error_analysis(ROWS, LABELS, tmp_path / "ea.json", data_dir="/c")
    saved = json.loads(path.read_text())
    assert saved["confidently_wrong"][0]["path"] == "a4.wav"
    assert saved["most_confused_pairs"][0]["count"] == 2

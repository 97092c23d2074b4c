"""Emotion x intensity predictions scored as emotions (flat 21-/15-label models beside 6-/8-emotion ones)."""

import pytest

from ser_hf.corpora.cremad import CREMAD_EMOTIONS, CREMAD_LABELS_21
from ser_hf.evaluation.emotion_collapse import collapsed_metrics, emotion_of
from ser_hf.evaluation.fold_summary import summarize
from ser_hf.labels import RAVDESS_EMOTIONS
from ser_hf.reporting.crossval_report import markdown_table


def test_every_cremad_21_label_collapses_to_its_emotion():
    assert {emotion_of(label, CREMAD_EMOTIONS) for label in CREMAD_LABELS_21} == set(CREMAD_EMOTIONS)
    assert emotion_of("angry_hi", CREMAD_EMOTIONS) == "angry"
    assert emotion_of("surprised_strong", RAVDESS_EMOTIONS) == "surprised"
    assert emotion_of("sad", CREMAD_EMOTIONS) == "sad"
    with pytest.raises(ValueError, match="bored_hi"):
        emotion_of("bored_hi", CREMAD_EMOTIONS)


def test_a_wrong_level_of_the_right_emotion_counts_as_right():
    true = ["angry_hi", "angry_lo", "sad_xx", "sad_md"]
    predicted = ["angry_lo", "angry_lo", "sad_hi", "angry_md"]
    metrics = collapsed_metrics(true, predicted, CREMAD_EMOTIONS)
    assert metrics["wa"] == pytest.approx(3 / 4) and metrics["ua"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["num_examples"] == 4


def test_a_cross_validation_reports_collapsed_emotions_and_intensity_over_folds():
    # Fold 0: both clips' emotions right (one with the wrong intensity); fold 2: one of two.
    emotions = {0: collapsed_metrics(["happy_normal", "sad_strong"], ["happy_strong", "sad_normal"], RAVDESS_EMOTIONS),
                2: collapsed_metrics(["happy_normal", "sad_strong"], ["happy_normal", "happy_strong"], RAVDESS_EMOTIONS)}
    assert emotions[0]["ua"] == 1.0 and emotions[2]["ua"] == 0.5
    fold = {"ua": 0.5, "wa": 0.5, "macro_f1": 0.5, "num_examples": 2, "confusion_matrix": [[1, 0], [1, 0]]}
    report = summarize({k: {**fold, "emotions": m} for k, m in emotions.items()}, ["a", "b"])
    side = report["emotions"]
    assert [row["fold"] for row in side["folds"]] == [0, 2] and side["labels"] == list(RAVDESS_EMOTIONS)
    assert side["summary"]["ua"] == {"mean": 0.75, "std": 0.25}
    assert side["pooled"]["wa"] == pytest.approx(3 / 4)  # 3 of the 4 clips, pooled over both folds
    assert "Scored as emotions" in markdown_table(report) and "75.0 +- 25.0 % over folds (100.0, 50.0)" in \
        markdown_table(report)
    # A side score that one fold lacks (a fold trained without --task multitask) is not summarised.
    assert "intensity" not in report
    mixed = summarize({0: {**fold, "intensity": emotions[0]}, 1: fold}, ["a", "b"])
    assert "intensity" not in mixed and "Intensity head" not in markdown_table(mixed)

"""Emotion x intensity predictions scored as emotions (flat 21-/15-label models beside 6-/8-emotion ones)."""

import csv

import pytest

from ser_hf.corpora.cremad import CREMAD_EMOTIONS, CREMAD_LABELS_21
from ser_hf.evaluation.emotion_collapse import collapsed_cv, collapsed_metrics, emotion_of
from ser_hf.labels import RAVDESS_EMOTIONS


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


def test_collapsed_cv_reads_each_fold_and_gives_the_spread(tmp_path):
    for fold, predicted in ((0, ["happy_strong", "sad_normal"]), (2, ["happy_normal", "happy_strong"])):
        (tmp_path / f"fold_{fold}").mkdir()
        with open(tmp_path / f"fold_{fold}" / "predictions_validation.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["path", "true", "predicted"])
            writer.writeheader()
            for i, (t, p) in enumerate(zip(["happy_normal", "sad_strong"], predicted)):
                writer.writerow({"path": f"{i}.wav", "true": t, "predicted": p})
    result = collapsed_cv(tmp_path, [0, 2], RAVDESS_EMOTIONS)
    assert result["folds"][0]["ua"] == 1.0 and result["folds"][2]["ua"] == 0.5
    assert result["summary"]["ua"] == {"mean": 0.75, "std": 0.25}

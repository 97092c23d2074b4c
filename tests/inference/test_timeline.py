"""Emotion timelines: per-window labels that follow the audio, silence gated, the files predict.py writes.

The model is `tone_model` (tests/conftest.py): a tiny wav2vec2 trained for a few seconds to tell the "sad" and
"angry" voices of the generated test corpus apart (`emotion_tone`: each emotion a noisy tone of its own pitch). A
random model's labels would follow nothing, and the tiny model cannot learn espeak-ng's acted prosody in seconds
(measured: stuck at chance after 150 steps), so a file whose halves are those two voices is the honest fast check
that the timeline changes label where the audio changes emotion.
"""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from ser_hf.commands import predict
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.classify import classify_file
from ser_hf.inference.timeline import SILENCE, emotion_timeline, label_changes, rms_dbfs
from ser_hf.inference.windows import chunk_starts
from ser_hf.reporting.plots import SILENCE_COLOR
from ser_hf.reporting.timeline_report import write_timeline
from tests.conftest import BAD_AUDIO, emotion_tone, write_bad_audio


def _write(path, *parts):
    sf.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """6 s of the sad voice, then 6 s of the angry voice."""
    return _write(tmp_path_factory.mktemp("timeline") / "sad_then_angry.wav",
                  emotion_tone("sad", 6.0, seed=1), emotion_tone("angry", 6.0, seed=2))


def test_timeline_changes_label_between_two_emotions(classifier, halves):
    timeline = emotion_timeline(classifier, halves, window_seconds=2.0, overlap_seconds=1.0)
    assert timeline["error"] is None and timeline["seconds"] == 12.0
    windows = timeline["windows"]
    # The windows long-file inference uses: every second, 2 s long, the last ending at the file's end.
    assert [w["start"] * SAMPLE_RATE for w in windows] == chunk_starts(12 * SAMPLE_RATE, 2 * SAMPLE_RATE, SAMPLE_RATE)
    assert all(w["end"] - w["start"] == 2.0 for w in windows)
    assert label_changes(timeline) == ["sad", "angry"]
    assert all(w["label"] == "sad" for w in windows if w["end"] <= 6.0)
    assert all(w["label"] == "angry" for w in windows if w["start"] >= 6.0)
    for w in windows:
        assert sum(w["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert w["score"] == max(w["scores"].values()) and set(w["scores"]) == set(timeline["labels"])


def test_a_short_file_is_one_window_scored_as_predict_scores_it(classifier, tmp_path):
    clip = _write(tmp_path / "angry.wav", emotion_tone("angry", 1.5, seed=3))
    timeline = emotion_timeline(classifier, clip)
    row = classify_file(classifier, clip, top_k=8)
    [window] = timeline["windows"]
    assert (window["start"], window["end"]) == (0.0, 1.5)
    assert window["label"] == row["label"] == "angry"
    for label, score in row["top_k"]:
        assert window["scores"][label] == pytest.approx(score, abs=1e-6)


class _CountingClassifier:
    """The pipeline, counting the windows it is asked to classify."""

    def __init__(self, pipeline):
        self.pipeline, self.model, self.calls = pipeline, pipeline.model, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.pipeline(*args, **kwargs)


def test_silent_windows_are_labelled_silence_and_not_classified(classifier, tmp_path):
    # A pause of 3 s at -70 dBFS (room noise, not digital zeros) between the two voices.
    pause = (10 ** (-70 / 20) * np.sqrt(2) * np.sin(np.arange(3 * SAMPLE_RATE) * 0.3)).astype(np.float32)
    assert rms_dbfs(pause) == pytest.approx(-70, abs=0.5)
    path = _write(tmp_path / "pause.wav", emotion_tone("sad", 4.0, seed=4), pause, emotion_tone("angry", 4.0, seed=5))
    counting = _CountingClassifier(classifier)
    timeline = emotion_timeline(counting, path, window_seconds=2.0, overlap_seconds=1.0, silence_dbfs=-50.0)
    silent = [w for w in timeline["windows"] if w["label"] == SILENCE]
    # Only the windows wholly inside the pause (4-6 s and 5-7 s) are quiet enough.
    assert [(w["start"], w["end"]) for w in silent] == [(4.0, 6.0), (5.0, 7.0)]
    assert all(w["scores"] is None and w["score"] is None and w["rms_dbfs"] < -50 for w in silent)
    assert counting.calls == len(timeline["windows"]) - 2
    # Windows straddling the pause and a voice may go either way; the ones wholly in a voice may not.
    assert all(w["label"] == "sad" for w in timeline["windows"] if w["end"] <= 4.0)
    assert all(w["label"] == "angry" for w in timeline["windows"] if w["start"] >= 7.0)

    ungated = emotion_timeline(classifier, path, window_seconds=2.0, overlap_seconds=1.0, silence_dbfs=float("-inf"))
    assert SILENCE not in label_changes(ungated) and ungated["silence_dbfs"] is None


@pytest.mark.parametrize("name, content, message", BAD_AUDIO)
def test_bad_files_get_the_error_predict_gives(classifier, tmp_path, name, content, message):
    path = write_bad_audio(tmp_path / name, content)
    timeline = emotion_timeline(classifier, path)
    assert timeline["windows"] == [] and timeline["error"].startswith(message)
    assert timeline["error"] == classify_file(classifier, path)["error"]


def test_csv_and_json_hold_every_window(classifier, halves, tmp_path):
    timeline = emotion_timeline(classifier, halves)
    timeline["windows"][0] = {**timeline["windows"][0], "label": SILENCE, "score": None, "scores": None}
    write_timeline(timeline, tmp_path / "t.csv")
    write_timeline(timeline, tmp_path / "t.json")
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert len(rows) == len(timeline["windows"])
    assert list(rows[0]) == ["start", "end", "label", "score", "rms_dbfs", *timeline["labels"]]
    assert rows[0]["label"] == SILENCE and rows[0]["score"] == "" and rows[0]["angry"] == ""
    assert rows[-1]["label"] == "angry" and rows[-1]["angry"] == rows[-1]["score"] != ""
    assert json.loads((tmp_path / "t.json").read_text()) == timeline


def _has_color(image, color, tolerance=0.02):
    return bool((np.abs(image[..., :3] - np.asarray(color)[:3]).max(axis=-1) < tolerance).any())


def test_predict_writes_timeline_files(tone_model, halves, tmp_path, capsys):
    from matplotlib import colormaps

    quiet = _write(tmp_path / "quiet.wav", emotion_tone("sad", 3.0, seed=6), np.zeros(3 * SAMPLE_RATE, np.float32))
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    out = tmp_path / "timelines"
    # Tones are no speech to the voice-activity detector: the energy gate alone here (the detector: test_vad.py).
    status = predict.main([str(tone_model), str(halves), str(quiet), str(tmp_path / "broken.wav"), "--timeline",
                           str(out), "--timeline_seconds", "2", "--timeline_overlap", "1", "--vad", "false"])
    assert status == 1  # broken.wav has an error row, and no timeline
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}_timeline.{ext}" for stem in ("quiet", "sad_then_angry")
                                                      for ext in ("csv", "json", "png")]
    saved = json.loads((out / "sad_then_angry_timeline.json").read_text())
    assert label_changes(saved) == ["sad", "angry"]
    tab10 = colormaps["tab10"]
    image = imread(out / "sad_then_angry_timeline.png")
    assert _has_color(image, tab10(saved["labels"].index("sad"))) and _has_color(image, tab10(saved["labels"].index("angry")))
    assert label_changes(json.loads((out / "quiet_timeline.json").read_text())) == ["sad", SILENCE]
    assert _has_color(imread(out / "quiet_timeline.png"), tuple(int(SILENCE_COLOR[i:i + 2], 16) / 255 for i in (1, 3, 5)))


def test_predict_refuses_a_timeline_window_that_cannot_advance(tone_model, halves, capsys):
    code = predict.main([str(tone_model), str(halves), "--timeline", "x", "--timeline_seconds", "1",
                         "--timeline_overlap", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--timeline_seconds/--timeline_overlap" in err and len(err.strip().splitlines()) == 1

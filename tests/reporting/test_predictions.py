"""predict's table and CSV for rows the model never saw: a file without speech reads "no speech detected"."""

import csv

from ser_hf.inference.vad import NO_SPEECH
from ser_hf.reporting.predictions import format_table, write_predictions


def _quiet(path):
    return {"path": path, "label": NO_SPEECH, "score": None, "top_k": [], "seconds": 2.0, "chunks": 0, "error": None}


def test_a_dimensional_models_no_speech_row_says_why_it_has_no_values(tmp_path):
    spoken = {"path": "a.wav", "label": None, "score": None, "top_k": [], "seconds": 1.5, "chunks": 1, "error": None,
              "dimensions": {"arousal": 0.61, "valence": 0.42}}
    rows = [spoken, _quiet("b.wav")]
    lines = format_table(rows).splitlines()
    assert lines[1].split() == ["a.wav", "arousal", "0.61", "valence", "0.42"]
    assert lines[2].split() == ["b.wav", *NO_SPEECH.split()]
    with open(write_predictions(rows, tmp_path / "p.csv"), newline="") as handle:
        a, b = csv.DictReader(handle)
    assert (a["arousal"], a["error"]) == ("0.610000", "")
    assert (b["arousal"], b["valence"], b["error"]) == ("", "", NO_SPEECH)


def test_an_emotion_models_no_speech_row_has_a_label_and_no_score(tmp_path):
    spoken = {"path": "a.wav", "label": "sad", "score": 0.7, "top_k": [("sad", 0.7), ("calm", 0.2)], "seconds": 1.0,
              "chunks": 1, "error": None}
    lines = format_table([spoken, _quiet("b.wav")]).splitlines()
    assert lines[1].split() == ["a.wav", "sad", "0.700", "calm", "0.20"]
    assert lines[2].split() == ["b.wav", *NO_SPEECH.split()] and "ERROR" not in lines[2]

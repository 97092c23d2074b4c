"""A --task dimensional model at inference: predict's rows hold its three values (the pipeline's, no softmax; the
windowed mean for a long file), the table and files show them, the timeline is refused, the app shows three bars.
The clips are tones, which the voice-activity detector rightly finds no speech in: it is off here (`--vad false`)."""

import csv
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_hf.app.demo_app import analyse_file, build_app
from ser_hf.commands import predict
from ser_hf.config import ModelArguments
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.errors import UsageError
from ser_hf.inference.classify import classify_files, regression_outputs
from ser_hf.inference.timeline import emotion_timeline
from ser_hf.labels import DIMENSIONS, label_maps
from ser_hf.models.encoders import build_model
from ser_hf.reporting.predictions import format_table, write_predictions
from tests.conftest import TINY_ENCODER, tone


@pytest.fixture(scope="module")
def classifier_model(tmp_path_factory):
    """A tiny random wav2vec2 regression of the three dimensions (layer norm: batched with a mask)."""
    out = tmp_path_factory.mktemp("regression_model")
    torch.manual_seed(0)
    id2label, label2id = label_maps(DIMENSIONS)
    args = ModelArguments(model_name_or_path=None, model_type="wav2vec2",
                          model_config_overrides={**TINY_ENCODER, "feat_extract_norm": "layer"})
    model, feature_extractor = build_model(args, id2label, label2id, problem_type="regression")
    with torch.no_grad():  # outputs far from a distribution, so a softmax anywhere would show
        model.classifier.bias.copy_(torch.tensor([0.7, -0.4, 1.5]))
    model.save_pretrained(out)
    feature_extractor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for name, seconds, freq in (("a.wav", 1.0, 220.0), ("b.wav", 1.7, 330.0), ("long.wav", 7.0, 180.0)):
        sf.write(folder / name, tone(seconds, freq=freq, seed=int(freq)).astype(np.float32), SAMPLE_RATE)
    return folder


def test_the_saved_model_is_a_regression(classifier, classifier_model):
    config = json.loads((classifier_model / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"]["2"] == "valence"
    assert regression_outputs(classifier) == list(DIMENSIONS)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_rows_hold_the_pipelines_values(classifier, clips, batch_size):
    files = [clips / "a.wav", clips / "b.wav"]
    rows = classify_files(classifier, files, batch_size=batch_size)
    for path, row in zip(files, rows):
        expected = {s["label"]: s["score"] for s in classifier(str(path), top_k=None)}
        assert row["label"] is None and row["score"] is None and row["top_k"] == [] and row["error"] is None
        assert list(row["dimensions"]) == list(DIMENSIONS)
        for name in DIMENSIONS:
            assert row["dimensions"][name] == pytest.approx(expected[name], abs=1e-5)
    assert abs(sum(rows[0]["dimensions"].values()) - 1) > 0.1  # raw values: no softmax made them a distribution


def test_a_long_file_gets_the_mean_of_its_windows(classifier, clips):
    [row] = classify_files(classifier, [clips / "long.wav"], chunk_seconds=3.0, chunk_overlap=1.0)
    audio = sf.read(clips / "long.wav", dtype="float32")[0]
    starts = (0, 2, 4)  # hop 2 s; the last window moved back to end at 7 s
    windows = [classifier({"raw": audio[s * SAMPLE_RATE : (s + 3) * SAMPLE_RATE], "sampling_rate": SAMPLE_RATE},
                          top_k=None) for s in starts]
    assert row["chunks"] == 3
    for name in DIMENSIONS:
        mean = np.mean([next(s["score"] for s in scores if s["label"] == name) for scores in windows])
        assert row["dimensions"][name] == pytest.approx(mean, abs=1e-5)


def test_the_table_and_files_show_the_three_values(classifier, clips, tmp_path):
    rows = classify_files(classifier, [clips / "a.wav", clips / "missing.wav"])
    values = rows[0]["dimensions"]
    table = format_table(rows)
    assert re.search(rf"a\.wav\s+arousal {values['arousal']:.2f} dominance {values['dominance']:.2f} "
                     rf"valence {values['valence']:.2f}$", table, re.MULTILINE)
    assert re.search(r"missing\.wav\s+ERROR: no such file", table)
    with open(write_predictions(rows, tmp_path / "p.csv")) as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == ["path", *DIMENSIONS, "seconds", "chunks", "error"]
    assert float(written[0]["valence"]) == pytest.approx(values["valence"], abs=1e-6)
    assert written[1]["arousal"] == "" and written[1]["error"] == "no such file or folder"
    saved = json.loads(write_predictions(rows, tmp_path / "p.json").read_text())
    assert saved[0]["dimensions"] == pytest.approx(values)


def test_predict_prints_values_and_refuses_a_timeline(classifier_model, clips, tmp_path, capsys):
    assert predict.main([str(classifier_model), str(clips / "a.wav"), "--vad", "false"]) == 0
    assert re.search(r"a\.wav\s+arousal -?\d\.\d\d dominance -?\d\.\d\d valence -?\d\.\d\d", capsys.readouterr().out)
    assert predict.main([str(classifier_model), str(clips / "a.wav"), "--timeline", str(tmp_path / "t")]) == 2
    assert "--timeline draws the top emotion of each window" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_the_timeline_refuses_a_regression(classifier, clips):
    with pytest.raises(UsageError, match="a --task dimensional model has arousal, dominance and valence values"):
        emotion_timeline(classifier, clips / "long.wav", 2.0, 1.0)


def test_the_app_shows_three_bars_and_the_values(classifier, clips, tmp_path):
    shown = analyse_file(classifier, clips / "long.wav", tmp_path, window_seconds=2.0, overlap_seconds=1.0, vad=False)
    values = shown["row"]["dimensions"]
    assert list(shown["scores"]) == list(DIMENSIONS)
    assert all(0.0 <= v <= 1.0 for v in shown["scores"].values())  # the bars: values held to [0, 1]
    assert shown["scores"]["valence"] == min(1.0, max(0.0, values["valence"]))
    assert f"valence **{values['valence']:.2f}**" in shown["message"]
    assert shown["windows"] == [] and shown["image"].endswith("long_waveform.png")  # no timeline


def test_the_apps_bars_are_named_after_the_dimensions(classifier, clips):
    import gradio as gr

    demo = build_app(classifier, examples=[clips / "a.wav"], vad=False)
    [label] = [block for block in demo.blocks.values() if isinstance(block, gr.Label)]
    assert label.label == "arousal, dominance, valence (0-1)" and label.num_top_classes == 3
    [handler] = [fn for fn in demo.fns.values() if fn.name == "run"]
    message, scores, image, table = handler.fn(str(clips / "a.wav"))
    assert message.startswith("arousal **") and set(scores) == set(DIMENSIONS)

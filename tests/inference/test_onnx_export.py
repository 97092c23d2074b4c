"""ONNX export: the graph takes any batch and length, computes the PyTorch model's logits, and a mismatch is loud.

Tiny random models from a config (the conftest sizes); their classifier weights are scaled up so that logits are
far apart and the top label is a real decision, not a near tie.
"""

import json

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from transformers import (
    AutoModelForAudioClassification,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForAudioClassification,
)

from ser_hf import cli
from ser_hf.config import ModelArguments
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference import onnx_export
from ser_hf.inference.onnx_backend import OnnxAudioClassifier, clip_logits
from ser_hf.inference.onnx_export import ParityError, export_onnx, parity_clips
from ser_hf.inference.onnx_files import INT8_FILE, ONNX_FILE, REPORT_FILE
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from ser_hf.models.encoders import build_model
from tests.conftest import TINY_ENCODERS, TINY_WHISPER, write_run_record


def save_tiny_classifier(directory, model_type="wav2vec2", norm="layer", seed=0):
    """A random tiny classifier with its feature extractor (layer norm: with an attention mask; group: without)."""
    torch.manual_seed(seed)
    id2label, label2id = label_maps(RAVDESS_EMOTIONS)
    overrides = {**TINY_ENCODERS[model_type], "feat_extract_norm": norm}
    args = ModelArguments(model_name_or_path=None, model_type=model_type, model_config_overrides=overrides)
    model, extractor = build_model(args, id2label, label2id)
    with torch.no_grad():
        model.classifier.weight.mul_(300.0)
    model.save_pretrained(directory)
    extractor.save_pretrained(directory)
    return directory


def _clips(*seconds):
    rng = np.random.default_rng(1)
    t = [np.arange(int(s * SAMPLE_RATE)) / SAMPLE_RATE for s in seconds]
    return [(0.3 * np.sin(2 * np.pi * (120 + 70 * i) * x) + 0.05 * rng.standard_normal(len(x))).astype(np.float32)
            for i, x in enumerate(t)]


def _assert_matches_pytorch(model_dir, onnx_path, clips):
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    from transformers import AutoFeatureExtractor

    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    ours, theirs = clip_logits(model, extractor, clips), clip_logits(OnnxAudioClassifier(onnx_path, model.config),
                                                                    extractor, clips)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    assert (theirs.argmax(axis=1) == ours.argmax(axis=1)).all()
    return ours


@pytest.mark.parametrize("model_type, norm", [("wav2vec2", "layer"), ("wav2vec2", "group"), ("hubert", "layer"),
                                              ("wavlm", "layer"), ("data2vec-audio", "layer")])
def test_export_has_dynamic_axes_and_pytorch_logits(tmp_path, model_type, norm):
    model_dir = save_tiny_classifier(tmp_path / "model", model_type, norm)
    report = export_onnx(model_dir, tmp_path / "onnx", clips=3)

    graph = onnx.load(tmp_path / "onnx" / ONNX_FILE).graph
    # A mask only where the extractor gives one (group norm: none, the pipeline never sends one).
    assert [i.name for i in graph.input] == (["input_values", "attention_mask"] if norm == "layer" else ["input_values"])
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert all(d == ["batch", "time"] for d in dims)
    # Two lengths the export never saw, one of them longer than its example inputs.
    logits = _assert_matches_pytorch(model_dir, tmp_path / "onnx" / ONNX_FILE, _clips(0.6, 2.7))
    assert np.ptp(logits) > 1.0  # the scaled head: a decision, not a tie
    assert report["passed"] and report["fp32"]["labels_agree"] == 1.0 and report["fp32"]["batched"] == (norm == "layer")
    saved = json.loads((tmp_path / "onnx" / REPORT_FILE).read_text())
    assert saved["fp32"]["max_abs_logit_diff"] == report["fp32"]["max_abs_logit_diff"] < 1e-4
    # The folder describes itself: labels and preprocessing beside the graph.
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["id2label"]["0"] == RAVDESS_EMOTIONS[0]
    assert (tmp_path / "onnx" / "preprocessor_config.json").is_file()


def test_whisper_export_takes_its_fixed_frames_in_any_batch(tmp_path):
    torch.manual_seed(0)
    id2label, label2id = label_maps(RAVDESS_EMOTIONS)
    model = WhisperForAudioClassification(WhisperConfig(id2label=id2label, label2id=label2id, **TINY_WHISPER))
    with torch.no_grad():
        model.classifier.weight.mul_(300.0)
    model.save_pretrained(tmp_path / "model")
    WhisperFeatureExtractor(feature_size=TINY_WHISPER["num_mel_bins"], chunk_length=1).save_pretrained(tmp_path / "model")

    report = export_onnx(tmp_path / "model", tmp_path / "onnx", clips=3)
    (features,) = onnx.load(tmp_path / "onnx" / ONNX_FILE).graph.input
    assert features.name == "input_features"
    assert [d.dim_param or d.dim_value for d in features.type.tensor_type.shape.dim] == ["batch", 16, 100]
    _assert_matches_pytorch(tmp_path / "model", tmp_path / "onnx" / ONNX_FILE, _clips(0.4, 0.9, 0.7))
    assert report["passed"]


def test_pytorch_model_stays_in_eval_mode_through_the_export(tmp_path):
    # The exporter restores its wrapper's training mode on every submodule: with dropout on, the parity check
    # would compare a different computation (this failed on a real run before the wrapper was put in eval mode).
    model_dir = save_tiny_classifier(tmp_path / "model")
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    assert model.config.hidden_dropout > 0
    from transformers import AutoFeatureExtractor

    onnx_export.export_graph(model, AutoFeatureExtractor.from_pretrained(model_dir), tmp_path / "m.onnx")
    assert not model.training and not any(m.training for m in model.modules())


def test_a_graph_that_disagrees_fails_loudly(tmp_path, monkeypatch, capsys):
    model_dir = save_tiny_classifier(tmp_path / "model")
    real_export = onnx_export.export_graph

    def export_another_model(model, extractor, path, opset=onnx_export.DEFAULT_OPSET):
        other = AutoModelForAudioClassification.from_pretrained(save_tiny_classifier(tmp_path / "other", seed=1))
        return real_export(other.eval(), extractor, path, opset)

    monkeypatch.setattr(onnx_export, "export_graph", export_another_model)
    with pytest.raises(ParityError, match="disagrees"):
        export_onnx(model_dir, tmp_path / "onnx", clips=3)
    assert json.loads((tmp_path / "onnx" / REPORT_FILE).read_text())["passed"] is False
    # The command says so in one line and exits 1.
    assert cli.main(["export", str(model_dir), "--onnx", str(tmp_path / "onnx2"), "--clips", "3"]) == 1
    assert "parity check failed" in capsys.readouterr().err


def test_int8_export_is_quantized_and_reported(tmp_path):
    model_dir = save_tiny_classifier(tmp_path / "model")
    report = export_onnx(model_dir, tmp_path / "onnx", quantize=True, clips=3)
    ops = {node.op_type for node in onnx.load(tmp_path / "onnx" / INT8_FILE).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert "MatMulInteger" not in {node.op_type for node in onnx.load(tmp_path / "onnx" / ONNX_FILE).graph.node}
    int8 = report["int8"]
    assert 0.0 <= int8["labels_agree"] <= 1.0 and len(int8["labels"]) == int8["clips"] == report["fp32"]["clips"]
    # A different computation (int8 rounding), still the same model: close to fp32, not equal to it.
    assert 0.0 < int8["max_abs_logit_diff"] < 0.5 * int8["logit_scale"]
    assert set(report["files"]) == {ONNX_FILE, INT8_FILE}


def test_parity_uses_the_runs_validation_clips(tmp_path):
    data = tmp_path / "data"
    (data / "Actor_01").mkdir(parents=True)
    lengths = [0.5, 1.25, 0.8]
    for i, (seconds, clip) in enumerate(zip(lengths, _clips(*lengths))):
        sf.write(data / "Actor_01" / f"{i}.wav", clip, SAMPLE_RATE)
    run = write_run_record(tmp_path / "run", data, [[f"Actor_01/{i}.wav", "Actor_01", "sad", "sad", 0.5]
                                                    for i in range(3)])
    clips, source = parity_clips(run, count=2)
    assert [len(c) for c in clips] == [8000, 20000] and "validation clips" in source
    generated, source = parity_clips(tmp_path / "elsewhere", count=3)
    assert len({len(c) for c in generated}) == 3 and "generated" in source


def test_export_command_writes_the_folder_and_refuses_a_non_model(tmp_path, capsys):
    model_dir = save_tiny_classifier(tmp_path / "model")
    assert cli.main(["export", str(model_dir), "--int8", "--clips", "3"]) == 0
    out = capsys.readouterr().out
    assert "top labels agree on 100%" in out and "int8:" in out
    assert (model_dir / "onnx" / ONNX_FILE).is_file() and (model_dir / "onnx" / INT8_FILE).is_file()
    assert cli.main(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a saved model" in err

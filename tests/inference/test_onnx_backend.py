"""The ONNX backend gives what the PyTorch pipeline gives, through the same prediction path (windows, errors, batches).

The clips are chirps, not speech: predict runs with `--vad false` (the model on every file)."""

import csv

import numpy as np
import pytest
import soundfile as sf

from ser_hf.commands import predict
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.errors import UsageError
from ser_hf.inference.classify import load_classifier
from ser_hf.inference.onnx_backend import load_onnx_classifier, resolve_onnx_model
from ser_hf.inference.onnx_export import export_onnx
from ser_hf.inference.onnx_files import INT8_FILE, ONNX_FILE
from tests.inference.test_onnx_export import save_tiny_classifier


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny layer-norm wav2vec2 (attention mask: padded batches) exported, int8 too, to the run's onnx/."""
    run = save_tiny_classifier(tmp_path_factory.mktemp("run"))
    export_onnx(run, run / "onnx", quantize=True, clips=3)
    return run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two short clips of different lengths, a 3.2 s file (3 windows of 1.5 s every 1 s below), a broken file."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(3)
    for name, seconds, freq in (("a.wav", 0.7, 180.0), ("b.wav", 1.3, 420.0), ("long.wav", 3.2, 300.0)):
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        wave = 0.3 * np.sin(2 * np.pi * freq * t * (1 + t)) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / name, wave.astype(np.float32), SAMPLE_RATE)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt this is not audio")
    return [folder / n for n in ("a.wav", "b.wav", "long.wav", "broken.wav")]


def test_onnx_pipeline_scores_are_the_pipelines(exported, files):
    torch_pipe, onnx_pipe = load_classifier(exported, device="cpu"), load_classifier(exported, backend="onnx")
    assert onnx_pipe.model.path == exported / "onnx" / ONNX_FILE
    for path in files[:3]:
        ours, theirs = torch_pipe(str(path), top_k=None), onnx_pipe(str(path), top_k=None)
        assert [s["label"] for s in theirs] == [s["label"] for s in ours]  # the whole ranking
        np.testing.assert_allclose([s["score"] for s in theirs], [s["score"] for s in ours], atol=1e-5)
        assert abs(sum(s["score"] for s in theirs) - 1.0) < 1e-5  # the pipeline's softmax


def _predict_rows(model, files, tmp_path, name, *extra):
    out = tmp_path / f"{name}.csv"
    code = predict.main([str(model), *map(str, files), "--output", str(out), "--top_k", "8", "--chunk_seconds", "1.5",
                         "--chunk_overlap", "0.5", "--vad", "false", *extra])
    with out.open(newline="") as handle:
        return code, list(csv.DictReader(handle))


@pytest.mark.parametrize("batch_size", ["1", "16"])
def test_predict_with_onnx_gives_the_torch_rows(exported, files, tmp_path, batch_size):
    code, torch_rows = _predict_rows(exported, files, tmp_path, "torch", "--batch_size", batch_size)
    onnx_code, onnx_rows = _predict_rows(exported / "onnx", files, tmp_path, "onnx", "--backend", "onnx",
                                         "--batch_size", batch_size)
    assert code == onnx_code == 1  # the broken file
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows]
    assert [r["chunks"] for r in onnx_rows] == [r["chunks"] for r in torch_rows] == ["1", "1", "3", "0"]
    assert onnx_rows[3]["error"] == torch_rows[3]["error"] != ""
    for ours, theirs in zip(torch_rows[:3], onnx_rows[:3]):
        a, b = (dict(item.split(":") for item in row["top_k"].split(";")) for row in (ours, theirs))
        assert a.keys() == b.keys() and max(abs(float(a[k]) - float(b[k])) for k in a) <= 1e-4


def test_predict_int8_runs_the_quantized_model(exported, files, tmp_path, capsys):
    code, rows = _predict_rows(exported, files[:3], tmp_path, "int8", "--backend", "onnx", "--int8")
    assert code == 0 and all(r["label"] for r in rows)
    assert load_onnx_classifier(exported, int8=True).model.path.name == INT8_FILE
    # --int8 alone is a mistake, said in one line before any model is loaded.
    assert predict.main([str(exported), str(files[0]), "--int8"]) == 2
    assert "--backend onnx" in capsys.readouterr().err


def test_where_the_onnx_model_is_found(exported, tmp_path):
    assert resolve_onnx_model(exported) == exported / "onnx" / ONNX_FILE  # a run dir holding onnx/
    assert resolve_onnx_model(exported / "onnx", int8=True) == exported / "onnx" / INT8_FILE
    assert resolve_onnx_model(exported / "onnx" / INT8_FILE) == exported / "onnx" / INT8_FILE
    with pytest.raises(FileNotFoundError, match="ser-hf export"):
        resolve_onnx_model(tmp_path)
    with pytest.raises(UsageError, match="onnxruntime-gpu"):
        load_onnx_classifier(exported, device="cuda:0")
    with pytest.raises(ValueError, match="int8"):  # int8 exists only as an ONNX model
        load_classifier(exported, int8=True)


def test_backend_rows_compare_each_runtime_with_pytorch(exported, files):
    from ser_hf.experiments.throughput import measure_backends

    row = measure_backends(exported, exported / "onnx", files, batch_size=4, repeats=1)
    assert row["clips"] == 4 and set(row["backends"]) == {"torch", "onnx", "int8"}
    torch_row, onnx_row, int8 = (row["backends"][k] for k in ("torch", "onnx", "int8"))
    assert torch_row["vs_torch"] == 1.0 and torch_row["max_score_diff"] == 0.0 and torch_row["labels_agree"] == 1.0
    assert onnx_row["labels_agree"] == 1.0 and onnx_row["max_score_diff"] < 1e-4
    # int8 is another computation: its scores move (its labels may too), and it was timed like the others.
    assert int8["max_score_diff"] > onnx_row["max_score_diff"] and int8["clips_per_s"] > 0

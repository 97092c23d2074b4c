"""Export a trained classifier to ONNX (optionally int8), checked against the PyTorch model before it is kept.

    report = export_onnx("outputs/demo", "outputs/demo/onnx", quantize=True)

The folder gets model.onnx (dynamic batch and time axes; Whisper: dynamic batch, its fixed 30 s of log-mel
frames), model.int8.onnx with `quantize` (onnxruntime's dynamic quantization: int8 weights, activations quantized
on the fly), config.json and preprocessor_config.json (labels, sampling rate, normalisation: the folder describes
itself), and export_report.json: on a few clips (the run's validation clips when its output lists them, else
generated ones) the largest |logit difference| from PyTorch and whether the top labels agree. An fp32 export whose
top labels differ raises `ParityError`; int8's agreement is reported, not enforced (quantization may move a label).
A regression model (`--task dimensional`) has no top label: its outputs are the values, compared within the same
tolerance.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from ser_hf.console import known_noise
from ser_hf.data.audio import SAMPLE_RATE, decode_16k_mono
from ser_hf.inference.onnx_backend import OnnxAudioClassifier, clip_logits, compare_logits
from ser_hf.inference.onnx_files import DEFAULT_OPSET, INT8_FILE, ONNX_FILE, REPORT_FILE
from ser_hf.models.encoders import is_regression, uses_attention_mask
from ser_hf.storage import atomic_output, write_text_atomic

logger = logging.getLogger(__name__)

# fp32 kernels differ between the runtimes (fused attention, conv algorithms): differences of ~1e-6 of the logits'
# scale are rounding; anything near 1e-3 of it means a different computation.
RELATIVE_TOLERANCE = 1e-3


class ParityError(RuntimeError):
    """The ONNX model does not compute what the PyTorch model computes."""


class _LogitsOnly(torch.nn.Module):
    """The classifier with positional inputs and one output, the shape the exporter names."""

    def __init__(self, model, input_names):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.input_names, inputs))).logits


def _example_inputs(extractor, masked):
    """Two clips of different lengths, padded together: the traced graph must not bake in one length."""
    rng = np.random.default_rng(0)
    clips = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (SAMPLE_RATE, SAMPLE_RATE * 3 // 2)]
    features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt", padding=True)
    names = [extractor.model_input_names[0]] + (["attention_mask"] if masked else [])
    return names, tuple(features[name] for name in names)


def export_graph(model, extractor, path, opset=DEFAULT_OPSET):
    """Write `model` as ONNX with dynamic batch (and, for waveform models, time) axes.

    The TorchScript exporter (`dynamo=False`): on transformers 5.23 it exports wav2vec2, HuBERT, WavLM and the
    Whisper encoder with the same outputs as `dynamo=True` to ~1e-9, in a few seconds instead of about a minute.

    Args:
        model: an audio-classification model, in eval mode.
        extractor: its feature extractor (which inputs, with or without an attention mask).
        path: the .onnx file to write.
        opset: ONNX opset version.

    Returns:
        The input names of the graph.
    """
    masked = uses_attention_mask(extractor)
    names, inputs = _example_inputs(extractor, masked)
    # Whisper's log-mel input is always its fixed chunk of frames; waveforms have any length.
    time_axis = {} if names[0] == "input_features" else {1: "time"}
    axes = {name: {0: "batch", **time_axis} for name in names}
    axes["logits"] = {0: "batch"}
    # The wrapper in eval mode: the exporter restores the wrapper's mode on every submodule afterwards, and a new
    # Module is in training mode (dropout on: the PyTorch model would no longer be the one that was exported).
    wrapper = _LogitsOnly(model, names).eval()
    # The tracer warns about every Python-level shape check in the model's code; the parity check below is what
    # tells whether the graph computes what the model computes.
    with known_noise(warning_categories=(torch.jit.TracerWarning,)):
        torch.onnx.export(wrapper, inputs, str(path), input_names=names, output_names=["logits"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)
    return names


def quantize_int8(source, target):
    """Dynamic int8 quantization of the linear layers (weights int8, activations quantized per batch at run time).

    Only MatMul/Gemm: onnxruntime's ConvInteger has no fast CPU kernel, and the small conv front end is not where a
    transformer encoder spends its time.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime logs "Please consider (to run) pre-processing before quantization" on every call: its shape
    # inference pre-pass is for static quantization; dynamic int8 of MatMul/Gemm does not need it.
    with known_noise(log_prefixes=("Please consider",)):
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"])


def parity_clips(model_dir, count=8, seed=0):
    """Clips to compare the two runtimes on: the run's validation clips when its output lists them, else noise.

    Args:
        model_dir: a training output dir (predictions_validation.csv and data_args.json give the files).
        count: how many clips.
        seed: for generated clips.

    Returns:
        (clips as 1-D float32 arrays at 16 kHz, where they came from)
    """
    import csv

    model_dir = Path(model_dir)
    listed, args = model_dir / "predictions_validation.csv", model_dir / "data_args.json"
    if listed.is_file() and args.is_file():
        data_dir = Path(json.loads(args.read_text()).get("data_dir") or ".")
        with listed.open(newline="") as handle:
            paths = [data_dir / row["path"] for row in csv.DictReader(handle)]
        paths = [p for p in paths if p.is_file()][:count]
        if paths:
            return [decode_16k_mono(p) for p in paths], f"{len(paths)} validation clips from {listed}"
    rng = np.random.default_rng(seed)
    # Lengths from 0.5 to 3 s, a tone under noise, so the clips differ in length and content.
    lengths = np.linspace(0.5, 3.0, count)
    clips = [(0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * np.arange(int(s * SAMPLE_RATE)) / SAMPLE_RATE)
              + 0.05 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32) for s in lengths]
    return clips, f"{count} generated clips of 0.5-3 s"


def check_parity(model, extractor, onnx_model, clips):
    """Compare the PyTorch and ONNX logits, clip by clip (as the pipeline runs) and, with a mask, padded together.

    Returns:
        `compare_logits`' dict over both passes ("labels", "reference_labels": the clip-by-clip pass), plus "batched"
        (whether a padded batch was compared) and "logit_scale" (the largest |PyTorch logit|). For a regression
        model: "clips", "max_abs_logit_diff" (between the values), "batched", "logit_scale" and "regression": True.
    """
    batched = uses_attention_mask(extractor) and len(clips) > 1
    passes = (False, True) if batched else (False,)
    reference = np.concatenate([clip_logits(model, extractor, clips, together) for together in passes])
    other = np.concatenate([clip_logits(onnx_model, extractor, clips, together) for together in passes])
    if is_regression(model.config):  # the outputs are the values: no label to agree on
        return {"clips": len(clips), "max_abs_logit_diff": float(np.abs(reference - other).max()), "batched": batched,
                "logit_scale": float(np.abs(reference).max()), "regression": True}
    result = compare_logits(reference, other, model.config.id2label)
    result["reference_labels"], result["labels"] = result["reference_labels"][: len(clips)], result["labels"][: len(clips)]
    return {**result, "clips": len(clips), "batched": batched, "logit_scale": float(np.abs(reference).max())}


def export_onnx(model_dir, out_dir, quantize=False, opset=DEFAULT_OPSET, clips=8):
    """Export, quantize if asked, check against PyTorch, and write the self-describing folder.

    Args:
        model_dir: a training output dir (or any saved audio-classification model with its preprocessor config).
        out_dir: the export folder (created).
        quantize: also write model.int8.onnx.
        opset: ONNX opset version.
        clips: how many clips the parity check uses.

    Returns:
        The report written to export_report.json.

    Raises:
        ParityError: the fp32 ONNX model's top labels differ from PyTorch's, or its logits (a regression model's
            values) are further apart than rounding (the files and the report are left in `out_dir` to inspect).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    # Each file is written under a temporary name and renamed when complete: a full disk or a kill mid-export leaves
    # the previous export (or nothing), never a truncated model.onnx that a later load would fail on.
    with atomic_output(out_dir / ONNX_FILE, "rerun ser-hf export") as tmp:
        inputs = export_graph(model, extractor, tmp, opset)
    model.config.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)
    samples, source = parity_clips(model_dir, clips)
    parity = check_parity(model, extractor, OnnxAudioClassifier(out_dir / ONNX_FILE, model.config), samples)
    report = {"model_dir": str(model_dir), "inputs": inputs, "opset": opset, "clips": source,
              "tolerance": RELATIVE_TOLERANCE * max(1.0, parity["logit_scale"]), "fp32": parity,
              "versions": _versions(), "files": {ONNX_FILE: _megabytes(out_dir / ONNX_FILE)}}
    if quantize:
        with atomic_output(out_dir / INT8_FILE, "rerun ser-hf export") as tmp:
            quantize_int8(out_dir / ONNX_FILE, tmp)
        report["int8"] = check_parity(model, extractor, OnnxAudioClassifier(out_dir / INT8_FILE, model.config), samples)
        report["files"][INT8_FILE] = _megabytes(out_dir / INT8_FILE)
    labels_agree = parity.get("regression") or parity["labels_agree"] == 1.0
    report["passed"] = bool(labels_agree) and parity["max_abs_logit_diff"] <= report["tolerance"]
    write_text_atomic(out_dir / REPORT_FILE, json.dumps(report, indent=2))
    if not report["passed"] and parity.get("regression"):
        raise ParityError(f"{out_dir / ONNX_FILE} disagrees with {model_dir}: its values differ by up to "
                          f"{parity['max_abs_logit_diff']:.2e} on {parity['clips']} clips (tolerance "
                          f"{report['tolerance']:.1e}); see {out_dir / REPORT_FILE}")
    if not report["passed"]:
        raise ParityError(f"{out_dir / ONNX_FILE} disagrees with {model_dir}: top labels agree on "
                          f"{parity['labels_agree']:.0%} of {parity['clips']} clips, max |logit difference| "
                          f"{parity['max_abs_logit_diff']:.2e} (tolerance {report['tolerance']:.1e}); see "
                          f"{out_dir / REPORT_FILE}")
    return report


def _megabytes(path):
    return round(Path(path).stat().st_size / 2**20, 2)


def _versions():
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


"""Classify audio files with `pipeline("audio-classification")`, one clear result or error per file.

Every file is checked before the model sees it, so that a batch job gives each input a row:

- undecodable, empty, truncated, too short (< 400 samples at 16 kHz) or NaN/Inf audio -> an error row
  saying why (the pipeline would crash on a short clip and silently return NaN scores for NaN audio);
- clips up to `chunk_seconds` -> the pipeline on the file path, so results are exactly the pipeline's
  (ffmpeg inside it downmixes to mono and resamples to 16 kHz);
- longer files -> decoded window by window (bounded memory), each window through the pipeline, the
  softmax probabilities averaged over windows;
- with `vad=True` (predict and the app turn it on; `--vad false` turns it off), a readable file in which the
  voice-activity detector (`ser_hf.inference.vad`) finds no speech gets a row labelled "no speech detected" with no
  scores, and is not sent to the model; a file with speech is classified exactly as without it.

A regression model (`--task dimensional`: config.json's problem_type "regression") gives each file its three values
instead of a label: `row["dimensions"]` = {"arousal": ..., "dominance": ..., "valence": ...} (the pipeline's raw
outputs; for a long file their mean over the same windows), with `label` and `score` None and `top_k` empty.

    classifier = load_classifier("outputs/demo")
    rows = classify_files(classifier, collect_audio_files(["clips/"]), top_k=3)
    print(format_table(rows)); write_predictions(rows, "preds.csv")
"""

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from ser_hf.console import verbose
from ser_hf.corpora.files import AUDIO_EXTENSIONS
from ser_hf.data.audio import MIN_SAMPLES, SAMPLE_RATE, audio_duration_seconds
from ser_hf.data.scan import clean_error, scan_file
from ser_hf.inference.vad import NO_SPEECH, file_speech_segments, speech_segments
from ser_hf.inference.windows import check_chunking, decode_whole, decode_windows

logger = logging.getLogger(__name__)


def min_input_samples(config):
    """Fewest 16 kHz samples a model accepts: its conv receptive field, and never below `MIN_SAMPLES`.

    Args:
        config: the model's `PretrainedConfig`; configs without `conv_kernel` (e.g. Whisper, which pads to
            30 s) get `MIN_SAMPLES`.

    Returns:
        int.
    """
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return MIN_SAMPLES
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return max(MIN_SAMPLES, field)


def collect_audio_files(inputs):
    """Expand files and folders (recursively) into a list of audio files.

    A missing path is kept (it becomes an error row when classified) so that one typo does not stop a
    batch job.

    Args:
        inputs: paths to audio files or folders.

    Returns:
        list of Path. A named file is kept whatever its extension; in folders only audio extensions count.
    """
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                                and not p.name.startswith("._")))
        else:
            if not item.exists():
                logger.warning("%s: no such file or folder", item)
            files.append(item)
    return files


def load_classifier(model_dir, device=None, backend="torch", int8=False):
    """`pipeline("audio-classification")` on a local output dir or a Hub id.

    Args:
        model_dir: a training run's output dir, or a Hub model id; with backend "onnx" an export folder, a run's
            output dir holding onnx/ or an .onnx file (`ser_hf.inference.onnx_backend.resolve_onnx_model`).
        device: e.g. "cpu", "cuda:0"; None lets the pipeline choose.
        backend: "torch" (the PyTorch model) or "onnx" (onnxruntime; the same pipeline around the ONNX model).
        int8: with backend "onnx", the dynamically quantized model.int8.onnx.

    Returns:
        The pipeline.
    """
    if backend == "onnx":
        from ser_hf.inference.onnx_backend import load_onnx_classifier

        return load_onnx_classifier(model_dir, device=device, int8=int8)
    if backend != "torch" or int8:
        raise ValueError(f"backend {backend!r}{' with int8' if int8 else ''}: choose torch, or onnx (int8 or not)")
    import transformers

    # transformers draws a "Loading weights" bar over predict's table; SER_HF_VERBOSE=1 keeps it.
    bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    if not verbose():
        transformers.utils.logging.disable_progress_bar()
    try:
        return transformers.pipeline("audio-classification", model=str(model_dir), device=device)
    finally:
        if bars_were_on:
            transformers.utils.logging.enable_progress_bar()


def _scan_error(scan, min_samples):
    if scan.status == "too_short":
        n = round(scan.duration * SAMPLE_RATE)
        return f"too short ({n} samples at 16 kHz, the model needs at least {min_samples})"
    if scan.status == "non_finite":
        return f"non-finite audio: {scan.detail} (not sent to the model: it would return NaN scores)"
    return f"{scan.status}: {scan.detail}"


def _row(path, scores, top_k, seconds, chunks, outputs=None):
    """A classified file's row; with `outputs` (a regression model's names in id order) its values instead."""
    if outputs is not None:
        values = {s["label"]: float(s["score"]) for s in scores}
        return {"path": path, "label": None, "score": None, "top_k": [],
                "dimensions": {name: values[name] for name in outputs}, "seconds": round(float(seconds), 3),
                "chunks": chunks, "error": None}
    ranked = sorted(scores, key=lambda s: s["score"], reverse=True)[:top_k]
    return {"path": path, "label": ranked[0]["label"], "score": float(ranked[0]["score"]),
            "top_k": [(s["label"], float(s["score"])) for s in ranked], "seconds": round(float(seconds), 3),
            "chunks": chunks, "error": None}


def _error_row(path, error, seconds=None):
    # The row is the one place a file's error is reported (the table's ERROR line, the CSV/JSON): no log line too.
    return {"path": path, "label": None, "score": None, "top_k": [],
            "seconds": None if seconds is None else round(float(seconds), 3), "chunks": 0, "error": error}


def _no_speech_row(path, seconds):
    """A readable file without speech: labelled so, with no emotion and no scores (and no error: it was answered)."""
    return {"path": path, "label": NO_SPEECH, "score": None, "top_k": [], "seconds": round(float(seconds), 3),
            "chunks": 0, "error": None}


def is_no_speech(row):
    """Whether a `classify_file` row is the voice-activity detector's "no speech detected" (no scores)."""
    return row["label"] == NO_SPEECH and not row["error"] and not row["top_k"]


def regression_outputs(classifier):
    """A regression pipeline's output names in id order (`--task dimensional`), or None for a classifier."""
    from ser_hf.models.encoders import is_regression  # here: `--help` imports this module without transformers

    config = classifier.model.config
    return [config.id2label[i] for i in range(config.num_labels)] if is_regression(config) else None


def _classify_chunked(classifier, path, top_k, chunk_seconds, chunk_overlap, min_samples, total_seconds):
    sums, used = defaultdict(float), 0
    for start, samples in decode_windows(path, total_seconds, chunk_seconds, chunk_overlap):
        begin, end = start / SAMPLE_RATE, (start + len(samples)) / SAMPLE_RATE
        bad = int((~np.isfinite(samples)).sum())
        if bad:
            return _error_row(path, f"non-finite audio: {bad} NaN/Inf samples in {begin:.1f}-{end:.1f} s "
                                    "(not sent to the model: it would return NaN scores)", total_seconds)
        if len(samples) < min_samples:  # header longer than the data: nothing more to classify
            continue
        # The sampling rate already matches, so the pipeline skips resampling (which would need torchaudio).
        for s in classifier({"raw": samples, "sampling_rate": SAMPLE_RATE}, top_k=None):
            sums[s["label"]] += s["score"]
        used += 1
    if not used:
        return _error_row(path, f"too short (no window of at least {min_samples} samples at 16 kHz)", total_seconds)
    # Average of probabilities (soft voting), not of logits or a majority vote: each window is an independent
    # estimate; the mean stays a distribution comparable with single-pass scores, lets confident windows
    # count more than a vote would, and cannot be dominated by one window's extreme logits. A regression's values
    # (the pipeline applies no softmax to them) are averaged the same way: the file's mean rating.
    scores = [{"label": label, "score": total / used} for label, total in sums.items()]
    logger.info("%s: %.1f s in %d windows of %g s", path, total_seconds, used, chunk_seconds)
    return _row(path, scores, top_k, total_seconds, used, regression_outputs(classifier))


def classify_file(classifier, path, top_k=3, chunk_seconds=10.0, chunk_overlap=5.0, min_samples=None, vad=False):
    """Classify one file, or say why it cannot be classified.

    Args:
        classifier: an audio-classification pipeline (`load_classifier`).
        path: audio file.
        top_k: how many labels to keep, best first.
        chunk_seconds: files longer than this are classified in windows of this length; shorter ones in one
            pipeline pass on the file path (results identical to `classifier(path)`).
        chunk_overlap: seconds shared by consecutive windows (hop = chunk_seconds - chunk_overlap).
        min_samples: fewest 16 kHz samples to classify; default `min_input_samples(model config)`.
        vad: first ask the voice-activity detector; a file without speech gets `NO_SPEECH` and no scores.

    Returns:
        dict: path, label, score, top_k [(label, score), ...], seconds (decoded duration), chunks (windows the
        model saw: 1 for a single pass, 0 on error), error (None when it worked, else the reason). A regression
        model's row has `dimensions` ({name: value}) instead, label and score None, top_k empty. A file without
        speech (`vad`): label `NO_SPEECH`, score None, top_k empty, chunks 0, error None (`is_no_speech`).
    """
    path = str(path)
    check_chunking(chunk_seconds, chunk_overlap)
    if not Path(path).exists():
        return _error_row(path, "no such file or folder")
    min_samples = min_samples or min_input_samples(classifier.model.config)
    kind, found = triage(path, chunk_seconds, min_samples)
    if kind == "error":
        return found
    if vad:
        try:
            if not _file_has_speech(path, kind, found):
                return _no_speech_row(path, found)
        except ValueError as err:  # NaN/Inf samples in a long file: the reason, as the windows would give it
            return _error_row(path, str(err), found)
    if kind == "short":
        outputs = regression_outputs(classifier)
        scores = classifier(path, top_k=None if outputs else top_k)  # a regression: every output
        return _row(path, scores, top_k, found, 1, outputs)
    return _classify_chunked(classifier, path, top_k, chunk_seconds, chunk_overlap, min_samples, found)


def _file_has_speech(path, kind, seconds):
    # A short file is decoded whole (the pipeline decodes it again from the path: its scores stay exactly its own).
    return bool(speech_segments(decode_whole(path)) if kind == "short" else file_speech_segments(path, seconds))


def triage(path, chunk_seconds, min_samples):
    """("error", error row) | ("short", seconds: one pipeline pass) | ("long", seconds: windows) for an existing file.

    A file whose header says it is long is never decoded whole here, so memory stays bounded by one window.
    """
    try:
        header = audio_duration_seconds(path)
    except Exception:  # noqa: BLE001 - unreadable: the scan below reports why, with LFS/empty detection
        header = None
    if header is not None and header > chunk_seconds:
        return "long", header
    # The training-side scan: unreadable / empty / truncated / too short / NaN-Inf, first reason wins.
    # Silence is no error at inference (it still gets a prediction) and there is no length limit here.
    scan = scan_file(path, min_samples=min_samples, max_seconds=None, silence_threshold=-1.0, target_rate=SAMPLE_RATE)
    if scan.status != "ok":
        return "error", _error_row(path, _scan_error(scan, min_samples), scan.duration or None)
    return ("short" if scan.duration <= chunk_seconds else "long"), scan.duration


def classify_files(classifier, files, top_k=3, chunk_seconds=10.0, chunk_overlap=5.0, min_samples=None,
                   batch_size=1, vad=False):
    """Classify files; a file that fails gives an error row and the others go on.

    Args:
        classifier, top_k, chunk_seconds, chunk_overlap, min_samples, vad: as in `classify_file`.
        files: audio file paths.
        batch_size: above 1, clips up to `chunk_seconds` go through the model in batches (`batched_scores`): the
            pipeline's scores up to float rounding, its labels, several times faster for small models.

    Returns:
        list of row dicts, as `classify_file` returns, in the order of `files`.
    """
    check_chunking(chunk_seconds, chunk_overlap)  # a bad setting stops the job before any file, not per file
    rows, waiting = [], {}
    for index, path in enumerate(files):
        try:
            if batch_size > 1:
                row = _decode_for_batch(classifier, path, chunk_seconds, min_samples)
                if isinstance(row, np.ndarray):
                    if vad and not speech_segments(row):
                        row = _no_speech_row(str(path), len(row) / SAMPLE_RATE)
                    else:
                        waiting[index], row = row, None  # classified below, with the other short clips
            if batch_size <= 1 or row is _LONG:
                row = classify_file(classifier, path, top_k, chunk_seconds, chunk_overlap, min_samples, vad)
        except Exception as err:  # noqa: BLE001 - reported per file; the batch goes on
            row = _error_row(str(path), clean_error(err))
        rows.append(row)
    if waiting:
        scores = batched_scores(classifier, list(waiting.values()), batch_size)
        outputs = regression_outputs(classifier)
        for (index, samples), clip_scores in zip(waiting.items(), scores):
            rows[index] = _row(str(files[index]), clip_scores, top_k, len(samples) / SAMPLE_RATE, 1, outputs)
    return rows


_LONG = object()  # `_decode_for_batch`: a file for the windowed path


def _decode_for_batch(classifier, path, chunk_seconds, min_samples):
    """A short file's 16 kHz samples, an error row, or `_LONG` (longer than one window)."""
    path = str(path)
    if not Path(path).exists():
        return _error_row(path, "no such file or folder")
    kind, found = triage(path, chunk_seconds, min_samples or min_input_samples(classifier.model.config))
    if kind != "short":
        return found if kind == "error" else _LONG
    return decode_whole(path)


def batched_scores(classifier, clips, batch_size):
    """The pipeline's softmax scores for many clips, computed in batches (a regression model's raw outputs, as the
    pipeline gives them).

    Each clip is feature-extracted alone, exactly as the pipeline does it (normalisation is per clip). Clips whose
    features have the same shape are stacked; a model that takes an attention mask also gets clips of different
    lengths together, sorted by length, zero-padded and masked; a model without one (group-norm wav2vec2) would
    see the padding, so those clips run one by one.

    Args:
        classifier: an audio-classification pipeline.
        clips: 1-D float32 arrays at 16 kHz.
        batch_size: clips per forward pass.

    Returns:
        For each clip, [{"label", "score"}, ...] over every class.
    """
    import torch

    model, extractor = classifier.model, classifier.feature_extractor
    regression = regression_outputs(classifier) is not None  # the pipeline gives its raw outputs: no softmax
    features = [extractor(clip, sampling_rate=SAMPLE_RATE, return_tensors="pt")[extractor.model_input_names[0]][0]
                for clip in clips]
    masked = bool(getattr(extractor, "return_attention_mask", False))
    groups = defaultdict(list)  # clips that can share a batch
    for i, f in enumerate(features):
        groups["masked" if masked and f.ndim == 1 else tuple(f.shape)].append(i)
    probabilities = [None] * len(clips)
    with torch.inference_mode():
        for members in groups.values():
            members.sort(key=lambda i: features[i].shape[-1])
            for start in range(0, len(members), batch_size):
                batch = members[start : start + batch_size]
                values = torch.nn.utils.rnn.pad_sequence([features[i] for i in batch], batch_first=True,
                                                         padding_value=float(extractor.padding_value))
                inputs = {extractor.model_input_names[0]: values.to(model.device, model.dtype)}
                if masked:
                    mask = torch.zeros(values.shape[:2], dtype=torch.long)
                    for row, i in enumerate(batch):
                        mask[row, : features[i].shape[0]] = 1
                    inputs["attention_mask"] = mask.to(model.device)
                logits = model(**inputs).logits.float()
                outputs = logits if regression else logits.softmax(dim=-1)
                for i, row in zip(batch, outputs.cpu().numpy()):
                    probabilities[i] = row
    names = model.config.id2label
    return [[{"label": names[k], "score": float(p[k])} for k in range(len(p))] for p in probabilities]



"""Measure what a run costs: the first pass over a corpus, later epochs, training and inference throughput.

Every figure of one benchmark is measured in one process, one after the other, so that ratios between settings
survive a noisy shared machine. Training throughput counts only real audio: the seconds of unpadded (and, with
'crop', uncropped) samples the model trained on per wall-clock second.

    corpus = synthetic_ravdess(Path("data/bench_ravdess48k"))
    first = measure_first_pass(paths, tmp_dir)
    row = measure_training("seed", model_args, data_args, training_args, splits, label_names, steps=3)
"""

import dataclasses
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import TrainerCallback

from ser_hf.data.audio import decode_16k_mono
from ser_hf.data.audio_cache import DecodedAudioCache
from ser_hf.data.collator import AudioCollator
from ser_hf.data.prepare import audio_loader, build_datasets
from ser_hf.data.scan import scan_files
from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.labels import label_maps
from ser_hf.models.encoders import build_model, uses_attention_mask
from ser_hf.models.probe_features import LayerMeansCache, encoder_identity
from ser_hf.models.probe_head import ProbeHead
from ser_hf.training.precision import keep_trained_convolutions_fp32
from ser_hf.training.probe import ProbeSettings, probe_model_args, train_probe_head
from ser_hf.training.trainer import SERTrainer

logger = logging.getLogger(__name__)

# Dense bf16 peaks (no sparsity) from the vendors' data sheets, for model FLOPs utilisation.
GPU_BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}

# RAVDESS speech: 48 kHz, 1440 clips of 24 actors, 3.0-5.3 s, 3.7 s on average.
RAVDESS_SHAPE = {"clips": 1440, "actors": 24, "rate": 48_000, "mean_seconds": 3.7, "min": 3.0, "max": 5.3}


def synthetic_ravdess(root, clips=RAVDESS_SHAPE["clips"], seed=0):
    """A RAVDESS-shaped corpus of noise bursts (48 kHz, RAVDESS file names and actor folders, RAVDESS's lengths).

    What the clips hold does not matter for speed; their rate, length and count do. Reused when complete.

    Args:
        root: the folder (created).
        clips: how many clips (spread over 24 actors, 8 emotions).
        seed: the lengths' and samples' seed.

    Returns:
        The paths, in a fixed order.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    shape = RAVDESS_SHAPE
    # RAVDESS's 60 files per actor: 8 emotions x 2 intensities (neutral: 1) x 2 statements x 2 repetitions.
    # In rounds of one clip per actor, each actor a different emotion and the next round the next one, so that a
    # smaller corpus still has every actor (every fold) and several emotions (a recipe refuses a 1-label corpus).
    takes = [(emotion, intensity, statement, repetition) for statement in (1, 2) for repetition in (1, 2)
             for intensity in (1, 2) for emotion in range(1, 9) if not (emotion == 1 and intensity == 2)]
    takes.sort(key=lambda take: (take[2], take[3], take[1]))
    actors = range(1, shape["actors"] + 1)
    by_actor = {a: takes[a % len(takes):] + takes[:a % len(takes)] for a in actors}  # each actor starts elsewhere
    names = [f"03-01-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{a:02d}.wav"
             for k in range(len(takes)) for a in actors for e, i, s, r in [by_actor[a][k]]]
    # A gamma around the mean, clipped to RAVDESS's range.
    lengths = np.clip(shape["min"] + rng.gamma(2.0, (shape["mean_seconds"] - shape["min"]) / 2.0, size=len(names)),
                      shape["min"], shape["max"])
    paths = []
    for name, seconds in list(zip(names, lengths))[:clips]:
        path = root / f"Actor_{name[-6:-4]}" / name
        paths.append(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            samples = 0.1 * rng.standard_normal(int(seconds * shape["rate"])).astype(np.float32)
            sf.write(path, samples, shape["rate"], subtype="PCM_16")
    return paths


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def measure_data(paths, workers=None, decode_sample=200):
    """The first pass over a corpus (scan + decode to the 16 kHz cache, both cold) and the cost of a later epoch.

    Args:
        paths: the corpus's audio files.
        workers: processes for the first pass (default all cores).
        decode_sample: files decoded again to time an epoch without the cache (scaled to the whole corpus).

    Returns:
        {"clips", "audio_seconds", "first_pass_s" (scan + decode), "scan_s", "decode_to_cache_s",
         "epoch_from_cache_s", "epoch_decoding_s" (extrapolated), "epoch_decoding_sampled_clips"}
    """
    with tempfile.TemporaryDirectory() as scratch:
        scan_s, results = _timed(scan_files, paths, workers=workers, cache_path=Path(scratch) / "scan.json",
                                 progress=False)
        cache = DecodedAudioCache(Path(scratch) / "audio")
        decode_s, _ = _timed(cache.fill, paths, workers=workers, progress=False)
        read_s, total = _timed(lambda: sum(len(np.array(cache.load(p))) for p in paths))
    sample = paths[:: max(1, len(paths) // decode_sample)][:decode_sample]
    decoding_s, _ = _timed(lambda: [decode_16k_mono(p) for p in sample])
    return {"clips": len(paths), "audio_seconds": round(total / 16_000, 1), "first_pass_s": round(scan_s + decode_s, 2),
            "scan_s": round(scan_s, 2), "decode_to_cache_s": round(decode_s, 2), "epoch_from_cache_s": round(read_s, 2),
            "epoch_decoding_s": round(decoding_s * len(paths) / len(sample), 2),
            "epoch_decoding_sampled_clips": len(sample), "bad_files": sum(r.status != "ok" for r in results.values())}


def _count_real_audio(trainer, crop):
    """Wrap `trainer.compute_loss` to record the real samples of each training batch (the collator may run in
    worker processes, so it cannot count); 'crop' cuts every clip of a batch to its shortest one."""
    samples, clip_samples, compute_loss = [], [], trainer.compute_loss

    def counting(model, inputs, *args, **kwargs):
        if model.training:
            lengths = inputs["attention_mask"].sum(dim=1)
            samples.append(int(lengths.min()) * len(lengths) if crop else int(lengths.sum()))
            clip_samples.append(int(lengths.sum()))
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = counting
    return samples, clip_samples


class _StepTimer(TrainerCallback):
    """Wall time of every optimizer step; the FLOPs of the first (untimed) one, counted by torch."""

    def __init__(self):
        self.times, self.first_step_flops, self._start, self._counter = [], None, None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            from torch.utils.flop_counter import FlopCounterMode

            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.first_step_flops, self._counter = self._counter.get_total_flops(), None


def _reset_peak_memory():
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS starts again from the current RSS
    except OSError:
        pass


def _peak_rss_mb():
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def measure_training(name, model_args, data_args, training_args, splits, label_names, steps=3, warmup=1):
    """Train `warmup + steps` steps of a recipe's settings and time the last `steps`.

    Args:
        name: the row's name.
        model_args, data_args, training_args: the recipe's parsed arguments (`parse_config`), model included.
        splits: {"train": rows} (scanned).
        label_names: class names.
        steps: timed optimizer steps.
        warmup: untimed first steps (allocations, autocast caches, thread pools); the first one's FLOPs are counted.

    Returns:
        {"name", "settings", "step_s", "audio_s_per_s", "real_audio_share" (of the computed samples, None without
         padding), "audio_kept_share" (of the clips' samples), "peak_rss_mb", "peak_gpu_mb", "tflops_per_s"}
    """
    if warmup < 1 or steps < 1:
        raise ValueError(f"need at least one untimed and one timed step, got warmup={warmup}, steps={steps}")
    id2label, label2id = label_maps(label_names)
    torch.manual_seed(0)
    model, extractor = build_model(model_args, id2label, label2id)
    if training_args.bf16 and training_args.device.type == "cpu":  # as the recipe does
        keep_trained_convolutions_fp32(model)
    # Filled before the clock starts (a no-op when filled): the cache's cost is the data section's first pass.
    load = audio_loader({"train": splits["train"]}, data_args, Path(tempfile.gettempdir()) / "ser_hf_bench")
    data = build_datasets({"train": splits["train"]}, label2id, extractor, data_args, load)
    crop, masked = data_args.padding == "crop", uses_attention_mask(extractor)
    pad_to = data_args.max_duration_seconds if data_args.padding == "max_length" else None
    collator = AudioCollator(extractor.model_input_names[0], pad_to, extractor.padding_value)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as scratch:
        args = dataclasses.replace(
            training_args, output_dir=scratch, max_steps=warmup + steps, gradient_accumulation_steps=1,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            load_best_model_at_end=False, push_to_hub=False, early_stopping_patience=None)
        trainer = SERTrainer(model=model, args=args, train_dataset=data["train"], data_collator=collator,
                             callbacks=[timer], uses_attention_mask=masked, crop_training_batches=crop)
        samples, clip_samples = _count_real_audio(trainer, crop)
        _reset_peak_memory()
        trainer.train()
    timed_samples = samples[warmup : warmup + steps]
    step_s = float(np.mean(timer.times[warmup:]))
    audio_per_s = sum(timed_samples) / 16_000 / sum(timer.times[warmup:])
    padded = args.per_device_train_batch_size * (pad_to or 0)
    return {"name": name, "settings": _settings(model_args, data_args, args), "step_s": round(step_s, 3),
            "audio_s_per_s": round(audio_per_s, 2),
            "real_audio_share": round(sum(timed_samples) / 16_000 / steps / padded, 3) if padded else None,
            # What cropping to the batch's shortest clip left of the (max_duration-cropped) clips.
            "audio_kept_share": round(sum(timed_samples) / sum(clip_samples[warmup : warmup + steps]), 3),
            "peak_rss_mb": _peak_rss_mb(),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
            # The first step's FLOPs per second of its real audio, at the timed steps' audio rate.
            "tflops_per_s": float(f"{timer.first_step_flops / (samples[0] / 16_000) * audio_per_s / 1e12:.3g}")}


def _settings(model_args, data_args, args):
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    frozen = "encoder frozen" if model_args.freeze_encoder else (
        "feature encoder frozen" if model_args.freeze_feature_encoder else "all trained")
    batches = f"length-grouped x{args.length_grouping_batches}" if args.length_grouping_batches else "random"
    return (f"batch {args.per_device_train_batch_size}, padding {data_args.padding} ({batches}), {frozen}, "
            f"{precision}, {'audio cache' if data_args.audio_cache else 'decoded every epoch'}")


def measure_probe(model_args, data_args, training_args, splits, label_names, clips=32, epochs=5, steps=3):
    """An epoch of probe mode (a head on cached means) against a Trainer epoch of the same head, encoder frozen.

    Both train on the training split's clip count. The Trainer row is `measure_training` with the probe's model
    (`probe_model_args`: encoder frozen, weighted layer sum) and the recipe's data path; its epoch is its step time
    times the steps an epoch takes. The probe runs `clips` clips through the encoder once (the cache's one-time
    cost, per clip) and trains its head on as many rows as the split has: those clips' means tiled, since a head
    epoch costs the same whichever clips its rows come from (labels are arbitrary for the same reason).

    Returns:
        {"train_clips", "trainer_epoch_s", "probe_epoch_s", "speedup", "cache_s_per_clip", "trainer": the row}
    """
    model_args = probe_model_args(model_args)
    train = splits["train"]
    trainer = measure_training("encoder frozen, weighted layer sum, through the Trainer", model_args, data_args,
                               training_args, splits, label_names, steps=steps)
    trainer_epoch_s = trainer["step_s"] * math.ceil(len(train) / training_args.per_device_train_batch_size)

    id2label, label2id = label_maps(label_names)
    torch.manual_seed(0)
    model, extractor = build_model(model_args, id2label, label2id)
    paths = [row["path"] for row in train[:clips]]
    load = audio_loader({"train": train}, data_args, Path(tempfile.gettempdir()) / "ser_hf_bench")
    with tempfile.TemporaryDirectory() as scratch:
        cache = LayerMeansCache(scratch, encoder_identity(model_args, model, extractor))
        computed, fill_s = cache.fill(paths, model, extractor, load, progress=False)
        means = cache.stack(paths)
    labels = np.arange(len(paths)) % len(label_names)
    rows = np.resize(np.arange(len(paths)), len(train))  # the cached clips, repeated up to the split's size
    settings = ProbeSettings(epochs=epochs, patience=None, batch_size=training_args.probe_batch_size,
                             learning_rate=training_args.probe_learning_rate)
    result = train_probe_head(ProbeHead.from_model(model), (means[rows], labels[rows]), (means, labels), settings,
                              make_compute_metrics(label_names))
    # Three significant figures each (a tiny head's epoch can take 1e-4 s), the ratio from what is reported.
    trainer_epoch_s, probe_epoch_s = (float(f"{s:.3g}") for s in (trainer_epoch_s, result.seconds_per_epoch))
    return {"train_clips": len(train), "trainer_epoch_s": trainer_epoch_s, "probe_epoch_s": probe_epoch_s,
            "speedup": round(trainer_epoch_s / probe_epoch_s), "cache_s_per_clip": float(f"{fill_s / computed:.3g}"),
            "trainer": trainer}


def measure_inference(model_dir, paths, batch_size=16):
    """Clips per second of the plain pipeline, file by file, and of `classify_files` in batches; label agreement.

    Returns:
        {"clips", "pipeline_clips_per_s", "batched_clips_per_s", "speedup", "labels_agree", "max_score_diff"}
    """
    from ser_hf.inference.classify import classify_files, load_classifier

    classifier = load_classifier(model_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    classifier(str(paths[0]), top_k=None)  # warm-up
    plain_s, plain = _timed(lambda: [classifier(str(p), top_k=None) for p in paths])
    batched_s, rows = _timed(classify_files, classifier, paths, top_k=len(classifier.model.config.id2label),
                             batch_size=batch_size)
    top = [max(scores, key=lambda s: s["score"])["label"] for scores in plain]
    diffs = [abs(dict(r["top_k"])[s["label"]] - s["score"]) for r, scores in zip(rows, plain) for s in scores]
    return {"clips": len(paths), "batch_size": batch_size, "pipeline_clips_per_s": round(len(paths) / plain_s, 2),
            "batched_clips_per_s": round(len(paths) / batched_s, 2), "speedup": round(plain_s / batched_s, 2),
            "labels_agree": [r["label"] for r in rows] == top, "max_score_diff": float(max(diffs))}




def measure_backends(model_dir, onnx_dir, paths, batch_size=16, repeats=2):
    """Clips per second of predict.py's path with PyTorch fp32, ONNX fp32 and ONNX int8 (onnxruntime, CPU).

    The three run the same files through `classify_files` in turn, `repeats` times, and each keeps its fastest
    pass: on a shared machine the slowest passes measure the neighbours. PyTorch runs on the CPU too, so the
    ratios compare runtimes, not devices. Scores are compared with PyTorch's for every class of every clip.

    Args:
        model_dir: the PyTorch model (a saved output dir).
        onnx_dir: its `ser-hf export` folder (model.onnx; model.int8.onnx when it was exported with int8).
        paths: audio files.
        batch_size: as predict.py's --batch_size.
        repeats: timed passes per backend, after one untimed warm-up pass on two files.

    Returns:
        {"clips", "batch_size", "backends": {name: {"clips_per_s", "vs_torch", "labels_agree" (share of clips
         with PyTorch's label), "max_score_diff"}}} for name in torch, onnx and int8 (when exported).
    """
    from ser_hf.inference.classify import classify_files, load_classifier
    from ser_hf.inference.onnx_files import INT8_FILE

    classifiers = {"torch": load_classifier(model_dir, device="cpu"), "onnx": load_classifier(onnx_dir, backend="onnx")}
    if (Path(onnx_dir) / INT8_FILE).is_file():
        classifiers["int8"] = load_classifier(onnx_dir, backend="onnx", int8=True)
    labels = len(classifiers["torch"].model.config.id2label)
    best, rows = {}, {}
    for name, classifier in classifiers.items():
        classify_files(classifier, paths[:2], batch_size=batch_size)  # warm-up: thread pools, allocations
    for _ in range(repeats):
        for name, classifier in classifiers.items():
            seconds, rows[name] = _timed(classify_files, classifier, paths, top_k=labels, batch_size=batch_size)
            best[name] = min(seconds, best.get(name, math.inf))
    reference = [dict(r["top_k"]) for r in rows["torch"]]
    backends = {}
    for name in classifiers:
        scores = [dict(r["top_k"]) for r in rows[name]]
        backends[name] = {
            "clips_per_s": round(len(paths) / best[name], 2), "vs_torch": round(best["torch"] / best[name], 2),
            "labels_agree": float(np.mean([a["label"] == b["label"] for a, b in zip(rows[name], rows["torch"])])),
            "max_score_diff": float(max(abs(s[k] - r[k]) for s, r in zip(scores, reference) for k in r))}
    return {"clips": len(paths), "batch_size": batch_size, "backends": backends}
def machine():
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def gpu_peak_tflops(device_name):
    """The GPU's dense bf16 peak in TFLOP/s, when it is in `GPU_BF16_PEAK_TFLOPS`."""
    return next((peak for key, peak in GPU_BF16_PEAK_TFLOPS.items() if key in (device_name or "")), None)


"""The benchmark's sections (`ser-hf bench` = recipes/benchmark.py): data preparation, training throughput, probe
mode, inference, side by side in one process so the ratios hold on a noisy machine.

Offline by default: a RAVDESS-shaped corpus of noise (1440 clips, 48 kHz, RAVDESS's lengths) is written to
data/bench_ravdess48k once, and a wav2vec2-base-sized classifier is built from a config with random weights (the
same FLOPs as facebook/wav2vec2-base, which cannot be downloaded here). Training rows start from the seed recipe's
settings (what transformers' run_audio_classification.py does: batch 4, every clip padded to 5 s, feature encoder
trained, fp32, audio decoded every epoch) and add one change at a time, then each recipe config as shipped. The
probe row times an epoch of probe mode's head on cached means against the same head trained through the Trainer,
encoder frozen. The measurements themselves are `ser_hf.experiments.throughput`.
"""

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import torch

from ser_hf.config import parse_config, read_config
from ser_hf.data.prepare import prepare_corpus, prepare_splits
from ser_hf.errors import UsageError
from ser_hf.experiments.throughput import (
    RAVDESS_SHAPE,
    gpu_peak_tflops,
    machine,
    measure_backends,
    measure_data,
    measure_inference,
    measure_probe,
    measure_training,
    synthetic_ravdess,
)
from ser_hf.storage import write_text_atomic

logger = logging.getLogger("ser_hf")

BASE_RECIPE = "recipes/configs/ravdess.yaml"
# The seed recipe: transformers' example settings (and this repo's first ravdess recipe).
SEED = {"per_device_train_batch_size": 4, "padding": "max_length", "max_duration_seconds": 5.0,
        "freeze_feature_encoder": False, "auto_mixed_precision": False, "length_grouping_batches": 0,
        "audio_cache": False}
# Recipes once more with one setting changed: what that setting buys on the recipe itself.
VARIANTS = {
    "ravdess.yaml": (("cropped in random batches", {"padding": "crop", "length_grouping_batches": 0}),
                     ("cropped in length-grouped batches", {"padding": "crop", "length_grouping_batches": 4})),
    "demo.yaml": (("in bf16", {"auto_mixed_precision": True}),),
}
# One change at a time, each row keeping the ones above it; the last one is not a recipe default (README, Speed).
WINS = (
    ("+ feature encoder frozen", {"freeze_feature_encoder": True}),
    ("+ bf16 autocast (auto)", {"auto_mixed_precision": True}),
    ("+ audio decoded once (cache)", {"audio_cache": True}),
    ("+ no padding: crop, length-grouped batches", {"padding": "crop", "length_grouping_batches": 4}),
)


def _arguments(config, values, data_dir, device):
    """A recipe's parsed arguments with `values` applied, on the benchmark corpus.

    A pretrained encoder is replaced by a random one of wav2vec2-base's size (none can be downloaded offline); a
    config that builds its model from scratch (demo.yaml) keeps its own.
    """
    argv = ["--data_dir", str(data_dir), "--corpus", "ravdess", "--output_dir", "unused",
            "--use_cpu", str(device == "cpu").lower()]
    for key, value in values.items():
        argv += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    model_args, data_args, training_args = parse_config(config, argv)
    if model_args.model_name_or_path is not None:
        # wav2vec2-base's architecture is AutoConfig's default; the recipe's own overrides (dropouts, masking) stay.
        model_args = dataclasses.replace(model_args, model_name_or_path=None, model_type="wav2vec2")
    return model_args, data_args, training_args


def _training_rows(args, data_dir, splits, label_names):
    settings = [("seed settings (transformers example)", BASE_RECIPE, dict(SEED))]
    for name, change in WINS:
        settings.append((name, BASE_RECIPE, {**settings[-1][2], **change}))
    for config in args.config:
        settings.append((f"{Path(config).name} as shipped", config, {}))
        for variant, values in VARIANTS.get(Path(config).name, ()):
            settings.append((f"{Path(config).name}, {variant}", config, values))
    rows = []
    for name, config, values in settings:
        logger.info("training: %s", name)
        model_args, data_args, training_args = _arguments(config, values, data_dir, args.device)
        rows.append(measure_training(name, model_args, data_args, training_args, splits, label_names,
                                     steps=args.steps))
        # A ratio only between rows that train the same model: not for a config's own from-scratch model.
        own_model = read_config(config).get("model_name_or_path") is None
        rows[-1]["vs_seed"] = None if own_model else round(rows[-1]["audio_s_per_s"] / rows[0]["audio_s_per_s"], 2)
        print(_training_line(rows[-1]), flush=True)
    return rows


def _training_line(row):
    share = f"{row['real_audio_share']:.0%}" if row["real_audio_share"] else "100%"
    gpu = f"{row['peak_gpu_mb']} MB" if row["peak_gpu_mb"] is not None else "-"
    return (f"| {row['name']} | {row['settings']} | {row['step_s']:.2f} | {row['audio_s_per_s']:.2f} | "
            f"{'**%.2fx**' % row['vs_seed'] if row['vs_seed'] else '-'} | {share} | {row['audio_kept_share']:.0%} | {row['tflops_per_s']:.3g} | "
            f"{row['peak_rss_mb']} MB | {gpu} |")


def _projection(row, corpus_seconds, peak):
    """Projected training time of a 6-fold cross-validation, 10 epochs per fold (evaluation not included)."""
    trained = corpus_seconds * 5 / 6 * 10 * 6
    projection = {"row": row["name"], "six_fold_ten_epoch_train_minutes": round(trained / row["audio_s_per_s"] / 60, 1)}
    if peak:
        projection["mfu"] = round(row["tflops_per_s"] / peak, 3)
    return projection


def run_benchmark(args, command, generate_data=False):
    """Every section the options ask for, printed as it is measured; the report written to `args.output`.

    Args:
        args: the options of `ser-hf bench` (device, config, data_dir, clips, steps, infer_clips, probe_clips, skip,
            output).
        command: the command line, recorded in the report.
        generate_data: (re)generate the synthetic corpus in `args.data_dir` (reused when complete).

    Returns:
        The report dict.
    """
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU here")
    if generate_data or not Path(args.data_dir).exists():
        synthetic_ravdess(args.data_dir, clips=args.clips or RAVDESS_SHAPE["clips"])
    report = {"machine": machine(), "command": command}
    print(f"machine: {report['machine']}")

    # ---- Data: the first pass over the corpus, and every later epoch ----
    model_args, data_args, training_args = _arguments(BASE_RECIPE, {}, args.data_dir, args.device)
    prepared = prepare_splits(data_args)
    paths = sorted(row["path"] for rows in prepared.splits.values() for row in rows)
    if "data" not in args.skip:
        report["data"] = measure_data(paths)
        d = report["data"]
        print(f"\ndata: {d['clips']} clips, {d['audio_seconds'] / 3600:.2f} h | first pass {d['first_pass_s']:.1f} s "
              f"(scan {d['scan_s']:.1f} + decode to 16 kHz {d['decode_to_cache_s']:.1f}) | later epoch: "
              f"{d['epoch_from_cache_s']:.1f} s from the cache vs {d['epoch_decoding_s']:.1f} s decoding "
              f"(timed on {d['epoch_decoding_sampled_clips']} clips, scaled)")
    with tempfile.TemporaryDirectory() as scratch:  # the cache rows read from; the uncached rows decode anyway
        splits = prepare_corpus(data_args, scratch, prepared=prepared).splits

    # ---- Training throughput, one change at a time, then the recipes as shipped ----
    if "train" not in args.skip:
        print("\n| setting | what | step s | audio-s/s | vs seed | compute on audio | audio kept | TFLOP/s | peak RSS "
              "| peak GPU |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        report["training"] = _training_rows(args, args.data_dir, splits, prepared.label_names)
        peak = gpu_peak_tflops(report["machine"].get("gpu")) if args.device == "cuda" else None
        # The fastest wav2vec2-base-sized row (a config's own small model is another model).
        best = max((row for row in report["training"] if row["vs_seed"]), key=lambda row: row["audio_s_per_s"])
        report["projection"] = _projection(best, report.get("data", {}).get("audio_seconds")
                                           or RAVDESS_SHAPE["clips"] * RAVDESS_SHAPE["mean_seconds"], peak)
        print(f"\nprojected 6-fold x 10-epoch cross-validation (training only) with '{best['name']}': "
              f"{report['projection']['six_fold_ten_epoch_train_minutes']} min"
              + (f", MFU {report['projection']['mfu']:.1%} of {peak:g} TFLOP/s" if peak else ""))

    # ---- Probe mode: an epoch of a head on cached means vs the same head through the Trainer ----
    if "probe" not in args.skip:
        report["probe"] = _probe(args, splits, prepared.label_names)

    # ---- Inference: the plain pipeline file by file vs predict.py's batches ----
    if "infer" not in args.skip:
        report["inference"] = _inference(model_args, prepared.label_names, paths[: args.infer_clips],
                                         onnx="onnx" not in args.skip)
    write_text_atomic(Path(args.output), json.dumps(report, indent=2))
    print(f"\nwrote {args.output}")
    return report


def _probe(args, splits, label_names):
    """The probe row, on ravdess.yaml's settings (its encoder: random, wav2vec2-base-sized)."""
    logger.info("probe: a head on cached means vs the Trainer with the encoder frozen")
    model_args, data_args, training_args = _arguments(BASE_RECIPE, {}, args.data_dir, args.device)
    row = measure_probe(model_args, data_args, training_args, splits, label_names, clips=args.probe_clips,
                        steps=args.steps)
    print(f"\nprobe ({row['train_clips']} training clips): an epoch of the head on cached means "
          f"{row['probe_epoch_s']:.3f} s vs {row['trainer_epoch_s']:.1f} s through the Trainer with the encoder frozen "
          f"(**{row['speedup']}x**); the cache costs {row['cache_s_per_clip']:.3f} s a clip, once per encoder")
    return row


BACKEND_NAMES = {"torch": "PyTorch fp32", "onnx": "ONNX fp32 (onnxruntime)", "int8": "ONNX int8 (dynamic quantization)"}


def _inference(model_args, label_names, paths, onnx=True):
    from ser_hf.labels import label_maps
    from ser_hf.models.encoders import build_model

    rows = {}
    id2label, label2id = label_maps(label_names)
    with tempfile.TemporaryDirectory() as model_dir:
        # A wav2vec2-base-sized model (group norm, no attention mask: clips of different lengths run one by one)
        # and the same with layer norm and a mask (wav2vec2-large-lv60, HuBERT-large, WavLM: padded batches).
        for norm in ("group", "layer"):
            args = dataclasses.replace(model_args, model_config_overrides={
                **model_args.model_config_overrides, "feat_extract_norm": norm, "do_stable_layer_norm": norm == "layer"})
            torch.manual_seed(0)
            model, extractor = build_model(args, id2label, label2id)
            model.save_pretrained(model_dir)
            extractor.save_pretrained(model_dir)
            rows[norm] = measure_inference(model_dir, paths)
            r = rows[norm]
            print(f"\ninference ({norm} norm, {r['clips']} clips): pipeline {r['pipeline_clips_per_s']:.2f} clips/s, "
                  f"predict.py batches of {r['batch_size']} {r['batched_clips_per_s']:.2f} clips/s "
                  f"(**{r['speedup']:.2f}x**), labels identical: {r['labels_agree']}, "
                  f"max score difference {r['max_score_diff']:.1e}")
            if onnx:
                r["backends"] = _backend_rows(model_dir, paths)
    return rows


def _backend_rows(model_dir, paths):
    """PyTorch fp32 vs its ONNX export, fp32 and int8, on the same clips (all on the CPU: onnxruntime's provider)."""
    from ser_hf.inference.onnx_export import ParityError, export_onnx

    onnx_dir = Path(model_dir) / "onnx"
    try:
        export_onnx(model_dir, onnx_dir, quantize=True, clips=4)
    except ParityError as err:  # still timed: the rows below show how far the labels differ
        logger.warning("%s", err)
    row = measure_backends(model_dir, onnx_dir, paths)
    print("| backend (CPU) | clips/s | vs PyTorch | labels as PyTorch | max score difference |")
    print("|---|---|---|---|---|")
    for name, b in row["backends"].items():
        print(f"| {BACKEND_NAMES[name]} | {b['clips_per_s']:.2f} | **{b['vs_torch']:.2f}x** | {b['labels_agree']:.0%} | "
              f"{b['max_score_diff']:.1e} |")
    return row



"""The benchmark's measurements count the right things (speed itself is never asserted: see recipes/benchmark.py)."""

import dataclasses
import json

import pytest
import soundfile as sf

from ser_hf.commands import benchmark
from ser_hf.config import parse_config
from ser_hf.corpora.ravdess import parse_ravdess_filename
from ser_hf.data.prepare import exclude_bad_audio, prepare_splits
from ser_hf.experiments.throughput import (
    RAVDESS_SHAPE,
    measure_data,
    measure_probe,
    measure_training,
    synthetic_ravdess,
)
from tests.conftest import TINY_ENCODER


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return root, synthetic_ravdess(root, clips=48)


def test_synthetic_corpus_is_ravdess_shaped(corpus):
    root, paths = corpus
    assert len(paths) == 48 and len({p.parent.name for p in paths}) == RAVDESS_SHAPE["actors"]
    assert all(parse_ravdess_filename(p.name) for p in paths)
    info = [sf.info(p) for p in paths]
    assert {i.samplerate for i in info} == {48_000}
    assert all(RAVDESS_SHAPE["min"] - 0.01 <= i.duration <= RAVDESS_SHAPE["max"] + 0.01 for i in info)
    assert synthetic_ravdess(root, clips=48) == paths  # reused, not rewritten


def test_data_pass_decodes_everything_once(corpus):
    _, paths = corpus
    figures = measure_data([str(p) for p in paths], workers=1, decode_sample=8)
    total = sum(sf.info(p).duration for p in paths)
    assert figures["clips"] == 48 and figures["bad_files"] == 0 and figures["epoch_decoding_sampled_clips"] == 8
    assert figures["audio_seconds"] == pytest.approx(total, abs=0.1)
    assert figures["first_pass_s"] == pytest.approx(figures["scan_s"] + figures["decode_to_cache_s"], abs=0.02)


@pytest.mark.parametrize("padding", ["max_length", "crop"])
def test_training_counts_only_real_audio(corpus, tmp_path, padding):
    root, _ = corpus
    model_args, data_args, training_args = parse_config("recipes/configs/demo.yaml", [
        "--data_dir", str(root), "--corpus", "ravdess", "--output_dir", str(tmp_path), "--padding", padding,
        "--per_device_train_batch_size", "2", "--dataloader_num_workers", "0"])
    model_args = dataclasses.replace(model_args, model_config_overrides=dict(TINY_ENCODER))
    prepared = prepare_splits(data_args)
    splits, _ = exclude_bad_audio(prepared.splits, data_args, tmp_path)
    row = measure_training("tiny", model_args, data_args, training_args, splits, prepared.label_names, steps=2)
    assert row["audio_s_per_s"] > 0 and row["step_s"] > 0 and row["tflops_per_s"] > 0
    assert f"padding {padding}" in row["settings"]
    if padding == "max_length":  # RAVDESS-length clips padded to 5 s: 60-100 % of the compute is on audio
        assert RAVDESS_SHAPE["min"] / 5.0 <= row["real_audio_share"] <= RAVDESS_SHAPE["max"] / 5.0
    else:
        assert row["real_audio_share"] is None  # nothing padded


@pytest.mark.slow
def test_benchmark_command_writes_its_report(corpus, tmp_path, capsys):
    root, _ = corpus
    out = tmp_path / "bench.json"
    assert benchmark.main(["--data_dir", str(root), "--skip", "train", "probe", "onnx", "--infer_clips", "3",
                           "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["data"]["clips"] == 48 and set(report["inference"]) == {"group", "layer"}
    assert all(r["labels_agree"] and r["max_score_diff"] < 1e-4 for r in report["inference"].values())
    assert "first pass" in capsys.readouterr().out


@pytest.mark.slow
def test_probe_row_times_both_epochs_on_the_training_split(corpus, tmp_path):
    root, _ = corpus
    model_args, data_args, training_args = parse_config("recipes/configs/demo.yaml", [
        "--data_dir", str(root), "--corpus", "ravdess", "--output_dir", str(tmp_path),
        "--per_device_train_batch_size", "4", "--dataloader_num_workers", "0"])
    model_args = dataclasses.replace(model_args, model_config_overrides=dict(TINY_ENCODER))
    prepared = prepare_splits(data_args)
    splits, _ = exclude_bad_audio(prepared.splits, data_args, tmp_path)
    row = measure_probe(model_args, data_args, training_args, splits, prepared.label_names, clips=5, epochs=2,
                        steps=1)
    assert row["train_clips"] == len(splits["train"])
    # The Trainer row trained the probe's model: the whole encoder frozen, so only the head's settings show.
    assert "encoder frozen" in row["trainer"]["settings"] and "feature encoder" not in row["trainer"]["settings"]
    epoch_steps = -(-len(splits["train"]) // 4)
    assert row["trainer_epoch_s"] == pytest.approx(row["trainer"]["step_s"] * epoch_steps, rel=0.005)
    assert row["probe_epoch_s"] > 0 and row["cache_s_per_clip"] > 0
    assert row["speedup"] == round(row["trainer_epoch_s"] / row["probe_epoch_s"])


@pytest.mark.slow  # two fresh processes, each importing torch and building the demo's encoder
def test_scale_measures_each_size_in_its_own_process_cold_then_warm(tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert benchmark.main(["--scale", "6", "12", "--scale_dir", str(tmp_path / "corpus"), "--output", str(out)]) == 0
    sizes = json.loads(out.read_text())["scale"]["sizes"]
    assert [size["clips"] for size in sizes] == [6, 12]
    assert len(list((tmp_path / "corpus").rglob("*.wav"))) == 12  # one corpus: the smaller size is its first clips
    for size in sizes:
        assert [(row["pass"], row["step"]) for row in size["rows"]] == [
            (p, s) for p in ("first", "again") for s in ("scan", "audio_cache", "probe_cache")]
        assert all(row["peak_rss_mb"] > 0 for row in size["rows"])
        assert size["cache_mb"] < 0.55 * size["cache_mb_float32"]  # 16-bit clips cached as int16
    assert "| 12 |" in capsys.readouterr().out

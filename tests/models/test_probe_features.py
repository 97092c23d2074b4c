"""The probe's cache: per-layer time means that train the head exactly, keyed by encoder and file, written atomically."""

import errno
import os
import threading

import numpy as np
import pytest
import torch

from ser_hf import storage
from ser_hf.config import ModelArguments
from ser_hf.data.audio import decode_16k_mono
from ser_hf.errors import UsageError, WriteFailed
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from ser_hf.models.encoders import build_model
from ser_hf.models.probe_features import LayerMeansCache, encoder_identity, layer_means
from ser_hf.models.probe_head import ProbeHead
from ser_hf.training.probe import probe_model_args
from tests.conftest import TINY_ENCODERS, TINY_WHISPER, save_tiny_whisper, write_tone

ID2LABEL, LABEL2ID = label_maps(RAVDESS_EMOTIONS)

# Every architecture and front end the probe supports, two transformer layers each (three hidden states).
ARCHITECTURES = {
    "wav2vec2-groupnorm": ("wav2vec2", {**TINY_ENCODERS["wav2vec2"], "num_hidden_layers": 2}),
    "wav2vec2-stable-layernorm": ("wav2vec2", {**TINY_ENCODERS["wav2vec2"], "num_hidden_layers": 2,
                                               "feat_extract_norm": "layer", "do_stable_layer_norm": True}),
    "hubert": ("hubert", {**TINY_ENCODERS["hubert"], "num_hidden_layers": 2}),
    "wavlm": ("wavlm", {**TINY_ENCODERS["wavlm"], "num_hidden_layers": 2}),
    "data2vec-audio": ("data2vec-audio", {**TINY_ENCODERS["data2vec-audio"], "num_hidden_layers": 2}),
    "whisper": ("whisper", dict(TINY_WHISPER)),
}


def probe_model(model_type, overrides, seed=0):
    torch.manual_seed(seed)
    args = probe_model_args(ModelArguments(model_name_or_path=None, model_type=model_type,
                                           model_config_overrides=overrides))
    model, feature_extractor = build_model(args, ID2LABEL, LABEL2ID)
    return model.eval(), feature_extractor, args


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_the_head_on_cached_means_gives_the_model_logits(name):
    model, feature_extractor, _ = probe_model(*ARCHITECTURES[name])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a head far from its near-zero init: every layer weighs, logits of order 1
        model.layer_weights.copy_(torch.randn(model.layer_weights.shape, generator=generator))
        for module in (model.projector, model.classifier):
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
            module.bias.copy_(torch.randn(module.bias.shape, generator=generator))
    clip = (0.1 * np.random.default_rng(0).standard_normal(13_579)).astype(np.float32)
    means = layer_means(model, feature_extractor, clip)
    assert means.shape == (model.config.num_hidden_layers + 1, model.config.hidden_size) and means.dtype == np.float32
    with torch.no_grad():
        full = model(**feature_extractor(clip, sampling_rate=16_000, return_tensors="pt")).logits[0]
        from_means = ProbeHead.from_model(model)(torch.as_tensor(means)[None])[0]
    assert full.abs().max() > 0.5
    torch.testing.assert_close(from_means, full, rtol=1e-5, atol=1e-5)


@pytest.fixture
def clips(tmp_path):
    return [write_tone(tmp_path / "audio" / f"clip{i}.wav", 0.3 + 0.1 * i, 200 + 50 * i, seed=i) for i in range(4)]


def _cache(tmp_path, model, feature_extractor, args):
    return LayerMeansCache(tmp_path / "cache", encoder_identity(args, model, feature_extractor))


def test_a_second_fill_reuses_every_entry_and_a_changed_file_gets_a_new_one(tmp_path, clips):
    model, feature_extractor, args = probe_model(*ARCHITECTURES["wav2vec2-groupnorm"])
    cache = _cache(tmp_path, model, feature_extractor, args)
    threads = torch.get_num_threads()
    assert cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)[0] == 4
    assert torch.get_num_threads() == threads  # one thread while filling, then as before
    assert cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)[0] == 0
    stacked = cache.stack(clips)
    assert stacked.shape == (4, 3, 16)
    # The fill runs on one thread, this call on the default count: sums may round differently in the last bit.
    np.testing.assert_allclose(stacked[2], layer_means(model, feature_extractor, decode_16k_mono(clips[2])),
                               rtol=1e-5, atol=1e-6)
    assert isinstance(cache.load(clips[0]), np.memmap)
    old = cache.entry(clips[1])
    write_tone(clips[1], 0.9, 777, seed=9)  # another size and mtime
    assert cache.missing(clips) == [str(clips[1])]
    assert cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)[0] == 1
    assert not old.exists() and len(list(cache.cache_dir.glob("*.npy"))) == 4
    assert (cache.cache_dir / "encoder.json").is_file()


def test_another_encoder_gets_another_folder(tmp_path):
    model, feature_extractor, args = probe_model(*ARCHITECTURES["wav2vec2-groupnorm"])
    identity = encoder_identity(args, model, feature_extractor)
    reseeded = probe_model(*ARCHITECTURES["wav2vec2-groupnorm"], seed=1)
    other_config = probe_model(*ARCHITECTURES["hubert"])
    folders = {LayerMeansCache(tmp_path, encoder_identity(a, m, f)).cache_dir
               for m, f, a in (reseeded, other_config)} | {LayerMeansCache(tmp_path, identity).cache_dir}
    assert len(folders) == 3
    # The head and the labels are not the encoder: another label set shares the features.
    relabelled, _ = build_model(args, *label_maps(["a", "b"]))
    assert encoder_identity(args, relabelled, feature_extractor)["config_sha1"] == identity["config_sha1"]


def test_a_local_folder_is_known_by_its_weight_files(tmp_path):
    folder = save_tiny_whisper(tmp_path / "whisper")
    args = probe_model_args(ModelArguments(model_name_or_path=str(folder)))
    model, feature_extractor = build_model(args, ID2LABEL, LABEL2ID)
    identity = encoder_identity(args, model, feature_extractor)
    assert identity["weights"]["files"][0][0] == "model.safetensors"
    save_tiny_whisper(folder, seed=1)  # new weights in the same folder: a new mtime, a new cache
    assert encoder_identity(args, model, feature_extractor) != identity


def test_two_writers_filling_one_cache_at_once_leave_every_entry_whole(tmp_path, clips):
    model, feature_extractor, args = probe_model(*ARCHITECTURES["wav2vec2-groupnorm"])
    clips = clips * 3  # the same files asked for again and again, by both writers
    writers = [threading.Thread(target=_cache(tmp_path, model, feature_extractor, args).fill,
                                args=(clips, model, feature_extractor, decode_16k_mono), kwargs={"progress": False})
               for _ in range(2)]
    threads = torch.get_num_threads()  # each fill sets one thread and puts back what it found: interleaved here
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    torch.set_num_threads(threads)
    cache = _cache(tmp_path, model, feature_extractor, args)
    assert sorted(p.name for p in cache.cache_dir.iterdir() if not p.name.endswith(".npy")) == ["encoder.json"]
    for clip in clips[:4]:
        np.testing.assert_allclose(cache.load(clip), layer_means(model, feature_extractor, decode_16k_mono(clip)),
                                   rtol=1e-5, atol=1e-6)  # one thread in the fill: last-bit rounding only


def test_a_probe_cache_the_disk_cannot_hold_is_refused_before_any_entry(tmp_path, clips, monkeypatch):
    model, feature_extractor, args = probe_model(*ARCHITECTURES["wav2vec2-groupnorm"])
    cache = _cache(tmp_path, model, feature_extractor, args)
    monkeypatch.setattr(storage, "free_bytes", lambda folder: 10 * 2**20)  # under the 50 MB kept spare
    with pytest.raises(UsageError, match=r"for the probe cache of 4 clips: .* Free space there, or put the caches "
                                         r"on another disk with --cache_dir DIR"):
        cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)
    assert not list(cache.cache_dir.glob("*.npy*"))


def test_a_full_disk_mid_fill_keeps_the_entries_written_and_no_temporary(tmp_path, clips, monkeypatch):
    model, feature_extractor, args = probe_model(*ARCHITECTURES["wav2vec2-groupnorm"])
    cache = _cache(tmp_path, model, feature_extractor, args)
    real_fsync, calls = storage.os.fsync, []

    def fsync(fd):  # the third entry meets a full disk
        calls.append(fd)
        if len(calls) == 4:  # encoder.json, then entries 1 and 2
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    with pytest.raises(WriteFailed, match=r"failed: No space left on device .* rerun the same command: the clips "
                                          r"computed so far are kept"):
        cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)
    assert len(list(cache.cache_dir.glob("*.npy"))) == 2 and not list(cache.cache_dir.glob("*.tmp"))
    monkeypatch.setattr(storage.os, "fsync", real_fsync)
    assert cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)[0] == 2

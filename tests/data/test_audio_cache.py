import os

import numpy as np
import pytest
import soundfile as sf

from ser_hf.config import DataArguments
from ser_hf.data import audio_cache
from ser_hf.data.audio import decode_16k_mono
from ser_hf.data.audio_cache import AUDIO_CACHE_DIRNAME, DecodedAudioCache
from ser_hf.data.prepare import audio_loader, build_datasets
from tests.conftest import tone, write_tone


def _no_decoding(monkeypatch):
    def refuse(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(audio_cache, "decode_16k_mono", refuse)


def test_each_file_is_decoded_once_and_read_back_exactly(tmp_path, monkeypatch):
    paths = [write_tone(tmp_path / f"{i}.wav", 0.4 + 0.1 * i, 300, seed=i, sr=48_000, channels=1 + i % 2)
             for i in range(3)]
    cache = DecodedAudioCache(tmp_path / "cache")
    assert cache.fill(paths, workers=2, progress=False) == 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    _no_decoding(monkeypatch)
    assert cache.fill(paths, workers=1, progress=False) == 0
    monkeypatch.undo()
    for path in paths:
        assert np.array_equal(cache.load(path), decode_16k_mono(path))


@pytest.mark.parametrize("sr, channels, subtype, stored", [
    (16_000, 1, "PCM_16", np.int16),    # IEMOCAP, MSP-Podcast, EmoDB, CREMA-D: half the bytes, the same floats
    (16_000, 2, "PCM_16", np.int16),    # both channels equal (write_tone): their mean is still a 16-bit sample
    (48_000, 1, "PCM_16", np.float32),  # resampled (RAVDESS): no longer 16-bit samples
    (16_000, 1, "PCM_24", np.float32),  # finer than 16 bits
])
def test_16_bit_clips_are_stored_as_int16_and_read_back_exactly(tmp_path, sr, channels, subtype, stored):
    path = tmp_path / "clip.wav"
    sf.write(path, tone(1.0, sr, channels=channels, seed=3), sr, subtype=subtype)
    cache = DecodedAudioCache(tmp_path / "cache")
    cache.fill([path], workers=1, progress=False)
    assert np.load(cache.entry(path), mmap_mode="r").dtype == stored
    loaded = cache.load(path)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, decode_16k_mono(path))
    if stored is np.int16:
        assert cache.entry(path).stat().st_size < 0.51 * 4 * len(loaded)


def test_a_changed_file_is_decoded_again_and_its_old_array_deleted(tmp_path):
    path = write_tone(tmp_path / "a.wav", 0.5, 300, seed=0)
    cache = DecodedAudioCache(tmp_path / "cache")
    cache.fill([path], workers=1, progress=False)
    old = np.array(cache.load(path))
    write_tone(path, 0.7, 500, seed=1)  # new content, new size
    os.utime(path, ns=(1, 1))  # and a modification time that no clock-granularity coincidence can repeat
    assert cache.fill([path], workers=1, progress=False) == 1
    new = cache.load(path)
    assert len(new) != len(old) and np.array_equal(new, decode_16k_mono(path))
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_load_decodes_a_file_fill_never_saw(tmp_path):
    path = write_tone(tmp_path / "a.wav", 0.5, 300, seed=0)
    cache = DecodedAudioCache(tmp_path / "cache")
    assert np.array_equal(cache.load(path), decode_16k_mono(path))
    assert cache.entry(path).exists()


@pytest.mark.parametrize("use_cache", [True, False])
def test_datasets_read_the_cache_every_epoch_or_decode_when_it_is_off(tmp_path, monkeypatch, use_cache):
    from transformers import Wav2Vec2FeatureExtractor

    paths = [str(write_tone(tmp_path / "corpus" / f"{i}.wav", 0.5, 300, seed=i, sr=48_000)) for i in range(2)]
    splits = {"train": [{"path": paths[0], "label": "a"}], "validation": [{"path": paths[1], "label": "b"}]}
    data_args = DataArguments(corpus="ravdess", data_dir=str(tmp_path / "corpus"), audio_cache=use_cache,
                              scan_workers=1)
    load = audio_loader(splits, data_args, tmp_path / "out")
    assert (tmp_path / "corpus" / AUDIO_CACHE_DIRNAME).is_dir() == use_cache
    if use_cache:
        _no_decoding(monkeypatch)  # every later read comes from the arrays
    data = build_datasets(splits, {"a": 0, "b": 1}, Wav2Vec2FeatureExtractor(do_normalize=False), data_args, load)
    evaluated = np.asarray(data["validation"][0]["input_values"])
    monkeypatch.undo()
    assert np.allclose(evaluated, decode_16k_mono(paths[1]))
    assert len(data["train"][0]["input_values"]) == len(decode_16k_mono(paths[0]))

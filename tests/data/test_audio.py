import numpy as np
import pytest
import torch
from datasets import Audio, Dataset
from transformers import Wav2Vec2FeatureExtractor

from ser_hf.data.audio import SAMPLE_RATE, AudioTransform, audio_duration_seconds, crop, decode_16k_mono
from ser_hf.data.collator import AudioCollator
from tests.conftest import write_tone


def test_crop_random_window_for_training_and_start_for_evaluation():
    array = np.arange(100, dtype=np.float32)
    fixed = crop(array, 10)
    assert np.array_equal(fixed, array[:10])
    torch.manual_seed(0)
    starts = [int(crop(array, 10, random=True)[0]) for _ in range(20)]
    torch.manual_seed(0)
    assert [int(crop(array, 10, random=True)[0]) for _ in range(20)] == starts  # torch's RNG: resumable
    assert len(set(starts)) > 1 and all(0 <= w <= 90 for w in starts)
    assert crop(array, None) is array and crop(array, 200) is array


@pytest.mark.parametrize("channels", [1, 2])
def test_decode_gives_what_datasets_audio_gave_training_before_the_cache(tmp_path, channels):
    path = write_tone(tmp_path / "a.wav", 0.5, 440, seed=0, sr=44_100, channels=channels)
    array = decode_16k_mono(path)
    assert array.ndim == 1 and array.dtype == np.float32 and abs(len(array) - SAMPLE_RATE // 2) <= 16
    # The training data were datasets' Audio(16 kHz) column with its channels averaged: bit for bit the same.
    decoder = Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", Audio(sampling_rate=SAMPLE_RATE))[0]["audio"]
    assert np.array_equal(array, decoder.get_all_samples().data.numpy().mean(axis=0))
    assert audio_duration_seconds(path) == pytest.approx(0.5, abs=1e-3)


def test_transform_crops_training_clips_only_and_normalises_each_clip(tmp_path):
    paths = [str(write_tone(tmp_path / f"{i}.wav", 2.0, 300, seed=i)) for i in range(2)]
    ds = Dataset.from_dict({"path": paths, "label": [0, 1], "length": [32000, 32000]})
    fe = Wav2Vec2FeatureExtractor(do_normalize=True)
    train = ds.with_transform(AudioTransform(decode_16k_mono, fe, max_seconds=1.0, train=True))
    evaluation = ds.with_transform(AudioTransform(decode_16k_mono, fe, max_seconds=None, train=False))
    item = train[0]
    assert len(item["input_values"]) == SAMPLE_RATE and item["labels"] == 0
    assert abs(float(np.mean(item["input_values"]))) < 1e-3 and float(np.std(item["input_values"])) == pytest.approx(1, abs=1e-2)
    assert len(evaluation[1]["input_values"]) == 2 * SAMPLE_RATE
    # Length grouping reads the "length" column through the transform.
    assert list(train["length"]) == [32000, 32000]


@pytest.mark.parametrize("pad_to_seconds", [None, 0.01])
def test_collator_pads_and_masks(pad_to_seconds):
    features = [{"input_values": np.ones(50, np.float32), "labels": 1}, {"input_values": np.ones(120, np.float32), "labels": 0}]
    batch = AudioCollator("input_values", pad_to_seconds=pad_to_seconds)(features)
    width = max(120, int((pad_to_seconds or 0) * SAMPLE_RATE))
    assert batch["input_values"].shape == (2, width)
    assert batch["attention_mask"].sum(dim=1).tolist() == [50, 120]
    assert torch.all(batch["input_values"][0, 50:] == 0)
    assert batch["labels"].tolist() == [1, 0]


def test_augmentation_changes_training_clips_only_and_repeats_under_a_seed(tmp_path):
    from ser_hf.data.augment import build_augmentation

    path = str(write_tone(tmp_path / "a.wav", 1.0, 300, seed=0))
    ds = Dataset.from_dict({"path": [path], "label": [0]})
    fe = Wav2Vec2FeatureExtractor(do_normalize=False)
    plain = ds.with_transform(AudioTransform(decode_16k_mono, fe, max_seconds=None, train=True))[0]["input_values"]
    augmented = ds.with_transform(AudioTransform(decode_16k_mono, fe, None, train=True,
                                                 augment=build_augmentation("seed21", 0)))
    torch.manual_seed(1)
    first = [np.asarray(augmented[0]["input_values"]) for _ in range(4)]
    torch.manual_seed(1)
    again = [np.asarray(augmented[0]["input_values"]) for _ in range(4)]
    assert any(len(a) != len(plain) or not np.allclose(a, plain) for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    with pytest.raises(ValueError, match="training data only"):
        AudioTransform(decode_16k_mono, fe, None, train=False, augment=build_augmentation("seed21", 0))

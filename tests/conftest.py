"""Shared fixtures: generated audio in RAVDESS layout and tiny random models. Nothing is downloaded."""

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoConfig, AutoModelForAudioClassification, Trainer, TrainingArguments, Wav2Vec2FeatureExtractor

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.labels import RAVDESS_EMOTIONS

# A wav2vec2-shaped model small enough to train in seconds (the same keys work for hubert and wavlm).
TINY_ENCODER = {
    "conv_dim": [8, 8, 8],
    "conv_stride": [5, 4, 4],
    "conv_kernel": [10, 8, 8],
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 16,
    "mask_time_prob": 0.0,
    "layerdrop": 0.0,
}

# A Whisper just as small, 16 mel bins and a 1 s input: its encoder takes exactly 2 * max_source_positions
# log-mel frames of 10 ms (conv2 has stride 2), so 50 positions = 100 frames = a 1 s feature-extractor chunk.
TINY_WHISPER = {
    "d_model": 16,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "num_mel_bins": 16,
    "max_source_positions": 50,
    "max_target_positions": 16,
    "classifier_proj_size": 16,
}

# Every wav2vec2-family encoder at TINY_ENCODER's size (data2vec-audio's positional embedding is a stack of
# num_conv_pos_embeddings convolutions of conv_pos_kernel_size, not one wide convolution: two small ones here).
TINY_ENCODERS = {
    "wav2vec2": TINY_ENCODER,
    "hubert": TINY_ENCODER,
    "wavlm": TINY_ENCODER,
    "data2vec-audio": {**TINY_ENCODER, "num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5},
}


def save_tiny_whisper(directory, seed=0):
    """A random tiny Whisper saved as openai/whisper-* are: the seq2seq model and its feature extractor (1 s chunk)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    WhisperForConditionalGeneration(WhisperConfig(**TINY_WHISPER)).save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=TINY_WHISPER["num_mel_bins"], chunk_length=1).save_pretrained(directory)
    return directory


def write_tone(path, seconds, freq, seed, sr=SAMPLE_RATE, channels=1):
    """A noisy tone: distinct per emotion so a tiny model has something to learn."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr, subtype="PCM_16")
    return path


def make_ravdess_tree(root, actors=8, seconds=(0.4, 1.2)):
    """RAVDESS-named clips: one per emotion and actor (normal intensity, statement 01, repetition 01)."""
    rng = np.random.default_rng(0)
    for actor in range(1, actors + 1):
        for code, _ in enumerate(RAVDESS_EMOTIONS, start=1):
            name = f"03-01-{code:02d}-01-01-01-{actor:02d}.wav"
            write_tone(root / f"Actor_{actor:02d}" / name, rng.uniform(*seconds), 150 + 90 * code, seed=actor * 100 + code)
    return root


@pytest.fixture(scope="session")
def ravdess_tree(tmp_path_factory):
    """8 actors x 8 emotions of generated audio in the RAVDESS layout."""
    return make_ravdess_tree(tmp_path_factory.mktemp("ravdess"))


def tiny_trainer(output_dir, max_steps):
    """A plain Trainer on a tiny wav2vec2 and 8 random clips, saving a checkpoint every 2 steps."""
    torch.manual_seed(0)
    config = AutoConfig.for_model("wav2vec2", num_labels=3, **TINY_ENCODER)
    model = AutoModelForAudioClassification.from_config(config)
    generator = torch.Generator().manual_seed(0)
    data = [{"input_values": torch.randn(16_000, generator=generator), "labels": i % 3} for i in range(8)]
    args = TrainingArguments(str(output_dir), max_steps=max_steps, save_steps=2, save_strategy="steps",
                             per_device_train_batch_size=2, use_cpu=True, report_to="none",
                             logging_steps=100, disable_tqdm=True)
    return Trainer(model=model, args=args, train_dataset=data, processing_class=Wav2Vec2FeatureExtractor())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run of 4 steps saving every 2: checkpoint-2 and checkpoint-4, written once per module."""
    out = tmp_path_factory.mktemp("trained") / "run"
    tiny_trainer(out, max_steps=4).train()
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    return out


def emotion_tone(emotion, seconds, seed=0):
    """The generated "voice" of a demo emotion in these tests: `make_ravdess_tree`'s noisy tone for that emotion."""
    code = RAVDESS_EMOTIONS.index(emotion) + 1
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * (150 + 90 * code) * t) + noise).astype(np.float32)


def save_tone_model(directory, emotions=("sad", "angry"), steps=40, seed=0):
    """A tiny wav2vec2 with the 8 demo emotions, trained (a few seconds) to tell `emotions`' tones apart.

    A random model's labels follow nothing; this one's follow the input, so a test can generate a clip whose
    label is known and check that what a user sees is what the model says. 40 steps of AdamW at 1e-2 reach
    near-certain scores on 1 s tones (measured); one thread, because the tiny model's cost is thread overhead.
    """
    from ser_hf.config import ModelArguments
    from ser_hf.labels import label_maps
    from ser_hf.training.modeling import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        id2label, label2id = label_maps(RAVDESS_EMOTIONS)
        args = ModelArguments(model_name_or_path=None, model_type="wav2vec2", model_config_overrides=dict(TINY_ENCODER))
        model, feature_extractor = build_model(args, id2label, label2id)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        labels = torch.tensor([label2id[e] for e in emotions for _ in range(4)])
        model.train()
        for step in range(steps):
            clips = [emotion_tone(e, 1.0, seed=step * 100 + 10 * k + i) for k, e in enumerate(emotions) for i in range(4)]
            inputs = feature_extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            model(input_values=inputs["input_values"], labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        model.save_pretrained(directory)
        feature_extractor.save_pretrained(directory)
    finally:
        torch.set_num_threads(threads)
    return directory


@pytest.fixture(scope="session")
def tone_model(tmp_path_factory):
    """`save_tone_model`'s model (sad vs angry tones), trained once per session."""
    return save_tone_model(tmp_path_factory.mktemp("tone_model"))


# Files that predict reports instead of classifying, with the start of the reason its error row gives.
BAD_AUDIO = [
    ("notes.wav", "these are notes, not audio", "unreadable"),
    ("short.wav", np.zeros(100, dtype=np.float32), "too short"),
    ("nan.wav", np.full(SAMPLE_RATE, np.nan, dtype=np.float32), "non-finite"),
]


def write_bad_audio(path, content):
    """Write one BAD_AUDIO case: text where audio should be, or float samples as they are."""
    if isinstance(content, str):
        path.write_text(content)
    else:
        sf.write(path, content, SAMPLE_RATE, subtype="FLOAT")
    return path


def write_run_record(run, data_dir, rows):
    """The two files of a training output dir that name its validation clips: data_args.json and
    predictions_validation.csv, rows given as (path relative to data_dir, speaker, true, predicted, confidence)."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "data_args.json").write_text(json.dumps({"data_dir": str(data_dir)}))
    with (run / "predictions_validation.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "speaker", "true", "predicted", "confidence"])
        writer.writerows(rows)
    return run

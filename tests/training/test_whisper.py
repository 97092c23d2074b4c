"""Whisper encoders: the feature extractor, openai-layout checkpoints, freezing, 2-D features and evaluation that
equals the pipeline's. The end-to-end run is tests/recipes/test_whisper_e2e.py."""

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from transformers import (
    WhisperFeatureExtractor,
    WhisperForAudioClassification,
    WhisperForConditionalGeneration,
    pipeline,
)

from ser_hf.config import DataArguments, ModelArguments
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.data.collator import AudioCollator
from ser_hf.errors import UsageError
from ser_hf.evaluation.held_out import load_trained, predict_probabilities
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from ser_hf.models.encoders import build_model, check_padding_mode, uses_attention_mask
from ser_hf.training.trainer import SERTrainer
from tests.conftest import TINY_ENCODER, TINY_WHISPER, save_tiny_whisper, train, write_tone

ID2LABEL, LABEL2ID = label_maps(RAVDESS_EMOTIONS)
FRONT_END = {"encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias",
             "encoder.embed_positions.weight"}


def _random_whisper(**kwargs):
    args = ModelArguments(model_name_or_path=None, model_type="whisper", model_config_overrides=dict(TINY_WHISPER),
                          **kwargs)
    return build_model(args, ID2LABEL, LABEL2ID)


def _frozen(model):
    return {name for name, param in model.named_parameters() if not param.requires_grad}


def _trainable(module):
    return any(p.requires_grad for p in module.parameters())


@pytest.fixture(scope="module")
def openai_layout(tmp_path_factory):
    """A tiny Whisper saved as openai/whisper-* are (seq2seq weights under `model.`, a 1 s feature extractor)."""
    return save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


def test_random_whisper_gets_a_feature_extractor_for_its_input_length():
    model, fe = _random_whisper()
    assert type(model) is WhisperForAudioClassification and model.config.id2label[4] == "angry"
    assert type(fe) is WhisperFeatureExtractor and fe.feature_size == 16 and fe.chunk_length == 1
    assert fe.model_input_names[0] == "input_features" and not uses_attention_mask(fe)
    # Short and long clips alike become the 1 s (100-frame) input the encoder insists on.
    features = fe([np.zeros(4000, np.float32), np.ones(30000, np.float32)], sampling_rate=SAMPLE_RATE)
    assert np.asarray(features["input_features"]).shape == (2, 16, 100)
    assert model(input_features=torch.as_tensor(np.asarray(features["input_features"]))).logits.shape == (2, 8)


def test_a_whisper_config_that_is_not_whole_seconds_is_refused():
    with pytest.raises(UsageError, match="max_source_positions=75"):
        build_model(ModelArguments(model_name_or_path=None, model_type="whisper",
                                   model_config_overrides={**TINY_WHISPER, "max_source_positions": 75}),
                    ID2LABEL, LABEL2ID)


def test_openai_checkpoint_loads_its_encoder_under_a_new_head(openai_layout):
    source = WhisperForConditionalGeneration.from_pretrained(openai_layout).model.encoder.state_dict()
    model, fe = build_model(ModelArguments(model_name_or_path=str(openai_layout)), ID2LABEL, LABEL2ID)
    assert type(model) is WhisperForAudioClassification and model.config.num_labels == 8
    assert type(fe) is WhisperFeatureExtractor and fe.chunk_length == 1
    loaded = model.encoder.state_dict()
    assert set(loaded) == set(source) and all(torch.equal(loaded[name], source[name]) for name in source)


def test_freeze_feature_encoder_freezes_the_conv_front_end():
    model, _ = _random_whisper(freeze_feature_encoder=True)
    assert _frozen(model) == FRONT_END
    model, _ = _random_whisper(freeze_feature_encoder=False)
    # transformers keeps Whisper's sinusoidal positions fixed in any case.
    assert _frozen(model) == {"encoder.embed_positions.weight"}


def test_freeze_encoder_layers_freezes_the_front_end_and_the_bottom_layers():
    model, _ = _random_whisper(freeze_feature_encoder=False, freeze_encoder_layers=1)
    assert [_trainable(layer) for layer in model.encoder.layers] == [False, True]
    assert FRONT_END <= _frozen(model)
    assert _trainable(model.encoder.layer_norm) and _trainable(model.projector) and _trainable(model.classifier)
    with pytest.raises(ValueError, match="freeze_encoder_layers=3 but the model has 2 layers"):
        _random_whisper(freeze_encoder_layers=3)


def test_freeze_encoder_trains_only_the_head():
    model, _ = _random_whisper(freeze_encoder=True, use_weighted_layer_sum=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias"}


def test_weighted_layer_sum_weighs_every_encoder_layer():
    model, _ = _random_whisper(use_weighted_layer_sum=True)
    model.eval()
    features = torch.randn(2, 16, 100, generator=torch.Generator().manual_seed(0))
    output = model(input_features=features, output_hidden_states=True)
    # One weight per hidden state: the input embeddings and each layer's output.
    assert len(output.hidden_states) == model.layer_weights.numel() == TINY_WHISPER["encoder_layers"] + 1
    F.cross_entropy(output.logits, torch.tensor([0, 1])).backward()
    assert model.layer_weights.grad is not None and model.layer_weights.grad.abs().sum() > 0
    logits = []
    with torch.no_grad():
        for weights in ([9.0, -9.0, -9.0], [-9.0, -9.0, 9.0]):
            model.layer_weights.copy_(torch.tensor(weights))
            logits.append(model(input_features=features).logits)
    assert not torch.allclose(*logits)


@pytest.mark.parametrize(("model_type", "overrides", "inputs"), [
    ("whisper", {**TINY_WHISPER, "encoder_layerdrop": 0.5}, {"input_features": torch.zeros(2, 16, 100)}),
    ("wav2vec2", {**TINY_ENCODER, "num_hidden_layers": 3, "layerdrop": 0.5}, {"input_values": torch.zeros(2, 4000)}),
])
def test_weighted_layer_sum_turns_layerdrop_off(model_type, overrides, inputs, caplog):
    # transformers 5.23: a layer skipped by layerdrop leaves no hidden state and the weighted sum crashes.
    with caplog.at_level(logging.WARNING, logger="ser_hf"):
        model, _ = build_model(ModelArguments(model_name_or_path=None, model_type=model_type,
                                              use_weighted_layer_sum=True, model_config_overrides=overrides),
                               ID2LABEL, LABEL2ID)
    assert "layerdrop 0.5 -> 0" in caplog.text
    model.train()
    torch.manual_seed(0)
    for _ in range(8):  # with layerdrop 0.5 some of these would skip a layer
        assert model(**inputs).logits.shape == (2, 8)
    model, _ = build_model(ModelArguments(model_name_or_path=None, model_type=model_type,
                                          model_config_overrides=overrides), ID2LABEL, LABEL2ID)
    assert max(getattr(model.config, "layerdrop", 0), getattr(model.config, "encoder_layerdrop", 0)) == 0.5


def test_collator_stacks_fixed_length_features_without_a_mask():
    features = [{"input_features": np.full((16, 100), i, np.float32), "labels": i, "path": f"{i}.wav"}
                for i in range(3)]
    batch = AudioCollator("input_features", pad_to_seconds=5.0)(features)  # a waveform pad length changes nothing
    assert set(batch) == {"input_features", "labels", "paths"}
    assert batch["input_features"].shape == (3, 16, 100) and batch["input_features"].dtype == torch.float32
    assert all(batch["input_features"][i].eq(i).all() for i in range(3))
    assert batch["labels"].tolist() == [0, 1, 2] and batch["paths"] == ["0.wav", "1.wav", "2.wav"]
    with pytest.raises(ValueError, match="different shapes"):
        AudioCollator("input_features")([{"input_features": np.zeros((16, 100))},
                                         {"input_features": np.zeros((16, 90))}])
    waveforms = AudioCollator("input_values")([{"input_values": np.ones(3)}, {"input_values": np.ones(5)}])
    assert waveforms["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_clip_by_clip_evaluation_and_cropping_refuse_features():
    features = {"input_features": torch.zeros(2, 16, 100)}
    with pytest.raises(ValueError, match="waveform"):
        SERTrainer._logits_clip_by_clip(None, features, torch.ones(2, 100, dtype=torch.long))
    with pytest.raises(ValueError, match="waveform"):
        SERTrainer._crop_to_shortest(features, torch.ones(2, 100, dtype=torch.long))


def test_batched_evaluation_of_a_whisper_equals_the_pipeline(tmp_path):
    model, fe = _random_whisper(use_weighted_layer_sum=True)
    with torch.no_grad():  # a random tiny encoder barely tells clips apart: make what each clip holds matter
        model.encoder.conv1.weight.mul_(20)
        model.classifier.weight.mul_(300)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    fe.save_pretrained(model_dir)
    # Clips of different lengths in one batch, one longer than the 1 s chunk (truncated by both paths).
    files = [write_tone(tmp_path / f"{i}.wav", seconds, 220 + 180 * i, seed=i)
             for i, seconds in enumerate((0.3, 0.8, 1.6))]
    features = fe([sf.read(f, dtype="float32")[0] for f in files], sampling_rate=SAMPLE_RATE)["input_features"]
    trainer, _, label_names = load_trained(model_dir, tmp_path / "scratch", batch_size=3)
    probs, _ = predict_probabilities(trainer, [{"input_features": x, "labels": 0} for x in features], "validation")
    assert "auto_map" not in json.loads((model_dir / "config.json").read_text())  # no remote code
    classifier = pipeline("audio-classification", model=str(model_dir), device="cpu")
    for row, path in zip(probs, files):
        scores = {r["label"]: r["score"] for r in classifier(str(path), top_k=len(label_names))}
        np.testing.assert_allclose([scores[name] for name in label_names], row, rtol=1e-4, atol=1e-6)
    assert np.abs(probs - probs[0]).max() > 0.01  # the clips are told apart: the comparison means something


def test_padding_crop_is_refused_for_whisper_and_the_others_are_logged(openai_layout, caplog):
    with pytest.raises(UsageError, match="--padding crop"):
        check_padding_mode(ModelArguments(model_name_or_path=str(openai_layout)), DataArguments(padding="crop"))
    with caplog.at_level(logging.INFO, logger="ser_hf"):
        check_padding_mode(ModelArguments(model_name_or_path=None, model_type="whisper"),
                           DataArguments(padding="max_length"))
    assert "padding=max_length changes nothing" in caplog.text
    # Waveform models can crop.
    check_padding_mode(ModelArguments(model_name_or_path=None, model_type="wav2vec2"), DataArguments(padding="crop"))


def test_train_refuses_crop_for_whisper_before_touching_data(openai_layout, tmp_path):
    output_dir = tmp_path / "out"
    with pytest.raises(UsageError, match="--padding crop"):
        train(["--model_name_or_path", str(openai_layout), "--padding", "crop", "--corpus", "ravdess",
               "--data_dir", str(tmp_path / "no_corpus"), "--download", "false", "--output_dir", str(output_dir),
               "--use_cpu", "true", "--report_to", "none"])
    assert not output_dir.exists() and not (tmp_path / "no_corpus").exists()

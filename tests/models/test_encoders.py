import logging

import pytest
import torch
from transformers import (
    HubertForSequenceClassification,
    Wav2Vec2ForSequenceClassification,
    WavLMForSequenceClassification,
)

from ser_hf.config import ModelArguments
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from ser_hf.models.encoders import build_model, uses_attention_mask
from tests.conftest import TINY_ENCODER

ID2LABEL, LABEL2ID = label_maps(RAVDESS_EMOTIONS)


def _args(**kwargs):
    defaults = {"model_name_or_path": None, "model_type": "wav2vec2", "model_config_overrides": dict(TINY_ENCODER)}
    defaults.update(kwargs)
    return ModelArguments(**defaults)


def _trainable(module):
    return any(p.requires_grad for p in module.parameters())


@pytest.mark.parametrize(("model_type", "model_class"), [
    ("wav2vec2", Wav2Vec2ForSequenceClassification),
    ("hubert", HubertForSequenceClassification),
    ("wavlm", WavLMForSequenceClassification),
])
def test_random_init_of_each_encoder_classifies_with_emotion_names(model_type, model_class):
    model, fe = build_model(_args(model_type=model_type), ID2LABEL, LABEL2ID)
    # The three encoders share config keys and output shapes: only the class tells which one was built.
    assert type(model) is model_class and model.config.model_type == model_type
    assert model.config.id2label[4] == "angry" and model.config.num_labels == 8
    logits = model(input_values=torch.randn(2, 8000)).logits
    assert logits.shape == (2, 8)
    assert fe.sampling_rate == 16_000


def test_attention_mask_follows_the_feature_encoder_norm():
    _, group = build_model(_args(model_config_overrides={**TINY_ENCODER, "feat_extract_norm": "group"}), ID2LABEL, LABEL2ID)
    _, layer = build_model(_args(model_config_overrides={**TINY_ENCODER, "feat_extract_norm": "layer"}), ID2LABEL, LABEL2ID)
    assert not uses_attention_mask(group) and uses_attention_mask(layer)


def test_freezing_options():
    model, _ = build_model(_args(freeze_feature_encoder=True), ID2LABEL, LABEL2ID)
    assert not _trainable(model.wav2vec2.feature_extractor) and _trainable(model.wav2vec2.encoder)

    overrides = {**TINY_ENCODER, "num_hidden_layers": 3}
    model, _ = build_model(_args(model_config_overrides=overrides, freeze_encoder_layers=2), ID2LABEL, LABEL2ID)
    layers = model.wav2vec2.encoder.layers
    assert [_trainable(layer) for layer in layers] == [False, False, True]
    assert not _trainable(model.wav2vec2.feature_projection)

    model, _ = build_model(_args(freeze_encoder=True, use_weighted_layer_sum=True), ID2LABEL, LABEL2ID)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(not name.startswith("wav2vec2.") for name in trainable)
    assert "layer_weights" in trainable  # the weighted layer sum is part of the probe

    with pytest.raises(ValueError, match="freeze_encoder_layers"):
        build_model(_args(freeze_encoder_layers=5), ID2LABEL, LABEL2ID)


def test_config_overrides_reach_the_model():
    model, _ = build_model(_args(model_config_overrides={**TINY_ENCODER, "hidden_dropout": 0.3, "mask_time_prob": 0.2}),
                           ID2LABEL, LABEL2ID)
    assert model.config.hidden_dropout == 0.3 and model.config.mask_time_prob == 0.2


def test_pretrained_folder_loads_with_a_new_head(tmp_path):
    # The real recipe path (from_pretrained), offline: a saved encoder with 3 labels gets our 8.
    source, fe = build_model(_args(), {0: "a", 1: "b", 2: "c"}, {"a": 0, "b": 1, "c": 2})
    source.save_pretrained(tmp_path)
    fe.save_pretrained(tmp_path)
    model, loaded_fe = build_model(ModelArguments(model_name_or_path=str(tmp_path)), ID2LABEL, LABEL2ID)
    assert model.config.num_labels == 8 and model.config.id2label[7] == "surprised"
    assert torch.equal(model.wav2vec2.encoder.layers[0].attention.q_proj.weight,
                       source.wav2vec2.encoder.layers[0].attention.q_proj.weight)
    assert not _trainable(model.wav2vec2.feature_extractor)  # freeze_feature_encoder defaults to on
    assert loaded_fe.sampling_rate == 16_000


def test_pickled_weights_are_refused(tmp_path):
    # A pytorch_model.bin can run code when unpickled: only safetensors weights are loaded.
    source, fe = build_model(_args(), ID2LABEL, LABEL2ID)
    torch.save(source.state_dict(), tmp_path / "pytorch_model.bin")
    source.config.save_pretrained(tmp_path)
    fe.save_pretrained(tmp_path)
    with pytest.raises(OSError, match="safetensors"):
        build_model(ModelArguments(model_name_or_path=str(tmp_path)), ID2LABEL, LABEL2ID)


def test_an_encoder_that_cannot_be_loaded_fails_before_any_data_work(tmp_path):
    from ser_hf.errors import UsageError
    from ser_hf.models.encoders import check_model_available

    with pytest.raises(UsageError, match="no such model folder"):
        check_model_available(ModelArguments(model_name_or_path=str(tmp_path / "missing")))
    with pytest.raises(UsageError, match="no config.json"):
        check_model_available(ModelArguments(model_name_or_path=str(tmp_path)))
    # The suite runs with HF_HUB_OFFLINE=1 and an empty cache, as a machine without network does.
    with pytest.raises(UsageError, match=r"not in the local Hugging Face cache.*hf download someone/not-cached"):
        check_model_available(ModelArguments(model_name_or_path="someone/not-cached"))
    (tmp_path / "config.json").write_text("{}")
    check_model_available(ModelArguments(model_name_or_path=str(tmp_path)))  # a local folder: fine
    check_model_available(ModelArguments(model_name_or_path=None, model_type="wav2vec2"))  # random init: fine


def test_a_previous_output_with_other_labels_loads_with_a_new_head(tmp_path, caplog):
    encoder, extractor = build_model(
        ModelArguments(model_name_or_path=None, model_type="wav2vec2", model_config_overrides=dict(TINY_ENCODER)),
        *label_maps(RAVDESS_EMOTIONS))
    encoder.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        model, _ = build_model(ModelArguments(model_name_or_path=str(tmp_path)), *label_maps(["low", "high"]))
    assert model.config.id2label == {0: "low", 1: "high"} and model.classifier.out_features == 2
    assert "incompatible" not in caplog.text  # transformers' num_labels vs id2label noise

"""--task multitask: intensity labels and masking, the intensity head on the emotion head's input, the plain saved
emotion model beside the saved head. Tiny random models, random waveforms."""

import logging

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForAudioClassification, Wav2Vec2FeatureExtractor, pipeline

from ser_hf.config import DataArguments, SERTrainingArguments
from ser_hf.corpora.intensity import IGNORE_INDEX, intensity_id, intensity_names, intensity_of
from ser_hf.data.collator import AudioCollator
from ser_hf.errors import UsageError
from ser_hf.evaluation.intensity import intensity_metrics
from ser_hf.models.intensity_head import (
    INTENSITY_HEAD_FILE,
    attach_intensity_head,
    has_intensity_head,
    load_intensity_head,
    pooled_capture,
)
from ser_hf.training.multitask import MultitaskTrainer, check_multitask_data, mark_intensity, masked_intensity_loss
from ser_hf.training.trainer import SERTrainer
from tests.conftest import TINY_ENCODER


def _model(seed=0, num_labels=3):
    torch.manual_seed(seed)
    config = AutoConfig.for_model("wav2vec2", id2label={i: f"e{i}" for i in range(num_labels)},
                                  label2id={f"e{i}": i for i in range(num_labels)}, feat_extract_norm="layer",
                                  **TINY_ENCODER)
    return AutoModelForAudioClassification.from_config(config)


def _batch(intensity, seed=0, lengths=(8000, 6000, 5000, 7000)):
    generator = torch.Generator().manual_seed(seed)
    features = [{"input_values": torch.randn(n, generator=generator).numpy(), "labels": i % 3,
                 "intensity_labels": intensity[i]} for i, n in enumerate(lengths)]
    return AudioCollator("input_values")(features)


def _trainer(cls, model, tmp_path, **kwargs):
    args = SERTrainingArguments(str(tmp_path), use_cpu=True, report_to="none", auto_mixed_precision=False,
                                remove_unused_columns=False)
    return cls(model=model, args=args, processing_class=Wav2Vec2FeatureExtractor(return_attention_mask=True),
               **kwargs)


def test_intensity_of_each_corpus_masks_xx_and_neutral():
    assert intensity_of({"emotion": "angry", "level": "HI"}) == "high"
    assert intensity_of({"emotion": "angry", "level": "LO"}) == "low"
    assert intensity_of({"emotion": "angry", "level": "XX"}) is None  # unspecified, not a fourth level
    assert intensity_of({"emotion": "neutral", "level": "XX"}) is None
    assert intensity_of({"emotion": "sad", "intensity": "strong"}) == "strong"
    assert intensity_of({"emotion": "neutral", "intensity": "normal"}) is None  # RAVDESS neutral: no contrast
    assert intensity_of({"label": "sad", "intensity": ""}) is None  # a manifest's empty cell
    names = intensity_names("cremad", [])
    assert names == ("low", "medium", "high")
    assert intensity_id({"emotion": "fearful", "level": "MD"}, names) == 1
    assert intensity_id({"emotion": "fearful", "level": "XX"}, names) == IGNORE_INDEX
    assert intensity_names("manifest", [{"label": "a", "intensity": "hi"}, {"label": "b", "intensity": "lo"},
                                        {"label": "c"}]) == ("hi", "lo")


def test_mark_intensity_refuses_a_corpus_without_intensities():
    splits = {"train": [{"label": "a", "emotion": "a"}], "validation": [{"label": "a"}]}
    with pytest.raises(UsageError, match="no training clip"):
        mark_intensity(splits, "manifest")
    marked, names = mark_intensity({"train": [{"emotion": "sad", "level": "HI"}, {"emotion": "sad", "level": "XX"}]},
                                   "cremad")
    assert [row["intensity_label"] for row in marked["train"]] == [2, IGNORE_INDEX] and names[2] == "high"


def test_emotion_x_intensity_labels_refused_for_multitask():
    with pytest.raises(UsageError, match="--labels 6"):
        check_multitask_data(DataArguments(corpus="cremad", data_dir="x", labels="21"))
    check_multitask_data(DataArguments(corpus="cremad", data_dir="x", labels="6"))
    for corpus in ("ravdess", "demo"):
        with pytest.raises(UsageError, match="--labels 8"):
            check_multitask_data(DataArguments(corpus=corpus, data_dir="x", labels="15"))
        check_multitask_data(DataArguments(corpus=corpus, data_dir="x", labels="8"))
    with pytest.raises(UsageError, match="probe"):
        SERTrainingArguments("out", task="multitask", probe=True, use_cpu=True)


def test_masked_clips_give_the_intensity_head_no_gradient():
    logits = torch.randn(4, 3, requires_grad=True)
    loss = masked_intensity_loss(logits, torch.tensor([2, IGNORE_INDEX, 0, IGNORE_INDEX]))
    loss.backward()
    assert logits.grad[[1, 3]].abs().sum() == 0 and logits.grad[[0, 2]].abs().sum() > 0
    # Equal to the mean over the two labelled clips alone.
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([2, 0]))
    assert torch.allclose(loss, expected)
    # A batch with no intensity at all: 0 (not NaN), and still no gradient.
    logits.grad = None
    empty = masked_intensity_loss(logits, torch.full((4,), IGNORE_INDEX))
    empty.backward()
    assert empty.item() == 0 and logits.grad.abs().sum() == 0


def test_all_xx_batch_loss_equals_the_emotion_only_loss_and_leaves_the_head_untouched(tmp_path):
    model = _model()
    attach_intensity_head(model, ("low", "medium", "high"))
    multitask = _trainer(MultitaskTrainer, model, tmp_path / "m", intensity_loss_weight=1.0)
    plain = _trainer(SERTrainer, model, tmp_path / "p")
    model.eval()
    masked = _batch([IGNORE_INDEX] * 4)
    emotion_only = {k: v for k, v in masked.items() if k != "intensity_labels"}
    loss = multitask.compute_loss(model, dict(masked))
    assert torch.allclose(loss, plain.compute_loss(model, dict(emotion_only)))
    loss.backward()
    assert model.intensity_head.weight.grad.abs().sum() == 0
    # With intensities the head learns and the loss is larger by weight x its cross-entropy.
    model.zero_grad()
    labelled = multitask.compute_loss(model, _batch([0, 1, 2, IGNORE_INDEX]))
    labelled.backward()
    assert labelled > loss and model.intensity_head.weight.grad.abs().sum() > 0


def test_the_head_reads_what_the_emotion_classifier_reads_masking_included():
    model = _model().eval()
    batch = _batch([0, 0, 0, 0])
    with torch.no_grad(), pooled_capture(model) as pooled:
        logits = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"]).logits
    (vector,) = pooled
    assert torch.allclose(model.classifier(vector), logits)
    # The padded clip's pooled vector is the one it gets alone (the model's own masked mean over frames).
    with torch.no_grad(), pooled_capture(model) as alone:
        model(input_values=batch["input_values"][2:3, :5000])
    assert torch.allclose(vector[2], alone[0][0], atol=1e-5)


def test_saved_model_is_a_plain_emotion_classifier_and_the_head_round_trips(tmp_path, caplog):
    model = _model(seed=1)
    head = attach_intensity_head(model, ("normal", "strong"))
    trainer = _trainer(MultitaskTrainer, model, tmp_path / "run", intensity_loss_weight=0.5)
    out = tmp_path / "saved"
    trainer.save_model(str(out))
    assert has_intensity_head(out) and isinstance(model.intensity_head, type(head))  # re-attached after saving
    loaded, info = AutoModelForAudioClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with caplog.at_level(logging.WARNING):
        classifier = pipeline("audio-classification", model=str(out))
    assert not [r for r in caplog.records if "keys" in r.getMessage().lower()]
    waveform = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    inputs = classifier.feature_extractor(waveform, sampling_rate=16_000, return_tensors="pt")
    model.eval()
    with torch.no_grad(), pooled_capture(model) as trained_pooled:
        trained = model(**inputs).logits
    with torch.no_grad(), pooled_capture(classifier.model) as saved_pooled:
        saved = classifier.model(**inputs).logits
    assert torch.allclose(trained, saved, atol=1e-6)
    reloaded = load_intensity_head(out)
    assert reloaded.names == ("normal", "strong")
    with torch.no_grad():
        assert torch.allclose(reloaded(saved_pooled[0]), model.intensity_head(trained_pooled[0]), atol=1e-6)


def test_checkpoints_keep_the_head_for_resume(tmp_path):
    model = _model(seed=2)
    attach_intensity_head(model, ("normal", "strong"))
    trainer = _trainer(MultitaskTrainer, model, tmp_path / "run")
    checkpoint = tmp_path / "checkpoint-1"
    trainer.save_model(str(checkpoint), _internal_call=True)  # what the Trainer's checkpoint save calls
    assert not (checkpoint / INTENSITY_HEAD_FILE).exists()
    fresh = _model(seed=3)
    attach_intensity_head(fresh, ("normal", "strong"))
    from safetensors.torch import load_file

    fresh.load_state_dict(load_file(str(checkpoint / "model.safetensors")), strict=True)  # the head's keys included
    assert torch.equal(fresh.intensity_head.weight, model.intensity_head.weight)


def test_intensity_metrics_leave_out_clips_without_intensity():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    metrics = intensity_metrics(logits, np.array([0, 1, IGNORE_INDEX, 0]), ("normal", "strong"))
    assert metrics["num_examples"] == 3 and metrics["num_without_intensity"] == 1
    assert metrics["ua"] == pytest.approx((0.5 + 1.0) / 2) and metrics["chance_ua"] == 0.5
    assert intensity_metrics(logits, np.full(4, IGNORE_INDEX), ("normal", "strong")) is None

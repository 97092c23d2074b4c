"""The probe's head training, its checkpoint as the pipeline loads it for every architecture, and LP-FT's head."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, pipeline

from ser_hf.config import DataArguments, ModelArguments, SERTrainingArguments
from ser_hf.data.audio import decode_16k_mono
from ser_hf.errors import UsageError
from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.labels import label_maps
from ser_hf.models.encoders import build_model
from ser_hf.models.probe_features import HEAD_PARAMETERS, LayerMeansCache, encoder_identity
from ser_hf.models.probe_head import ProbeHead, write_head
from ser_hf.training.probe import (
    ProbeSettings,
    check_probe_args,
    head_model_args,
    load_head,
    probe_model_args,
    probe_settings,
    train_probe_head,
)
from tests.conftest import TINY_ENCODERS, save_tiny_whisper, write_tone

LABELS = ["low", "mid", "high"]
COMPUTE = make_compute_metrics(LABELS)


def _toy(seed, n=60, layers=3, hidden=8):
    """Means where layer 1 alone tells the classes apart."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.standard_normal((n, layers, hidden)).astype(np.float32)
    x[:, 1, 0] += 8.0 * labels
    return torch.as_tensor(x), torch.as_tensor(labels)


def _head(layers=3, hidden=8, seed=0):
    torch.manual_seed(seed)
    return ProbeHead(torch.ones(layers) / layers, torch.nn.Linear(hidden, 4), torch.nn.Linear(4, 3))


def test_the_head_learns_and_keeps_its_best_epoch():
    settings = ProbeSettings(epochs=80, learning_rate=1e-2, batch_size=16, patience=None, seed=0)
    result = train_probe_head(_head(), _toy(0), _toy(1), settings, COMPUTE)
    assert result.best_metrics["eval_ua"] == 1.0 and result.epochs_run == 80
    assert result.best_epoch == next(e["epoch"] for e in result.log_history if e.get("eval_ua") == 1.0)
    with torch.no_grad():
        assert (result.head(_toy(1)[0]).argmax(-1) == _toy(1)[1]).all()
    # The layer that carries the classes got the weight.
    assert torch.softmax(result.head.layer_weights, -1).argmax() == 1
    assert {"loss", "learning_rate", "step"} <= set(result.log_history[0]) and "eval_ua" in result.log_history[1]
    assert torch.equal(result.initial_head.layer_weights, torch.ones(3) / 3)


def test_training_is_seeded_and_early_stopping_stops():
    settings = ProbeSettings(epochs=200, learning_rate=1e-2, batch_size=16, patience=5, seed=3)
    first = train_probe_head(_head(), _toy(0), _toy(1), settings, COMPUTE)
    second = train_probe_head(_head(), _toy(0), _toy(1), settings, COMPUTE)
    assert first.epochs_run < 200 and first.epochs_run == first.best_epoch + 5
    assert first.log_history == second.log_history
    for a, b in zip(first.head.parameters(), second.head.parameters()):
        assert torch.equal(a, b)


def test_probe_settings_come_from_the_training_arguments(tmp_path):
    args = SERTrainingArguments(output_dir=str(tmp_path), probe=True, probe_epochs=7, probe_learning_rate=0.01,
                                probe_patience=0, metric_for_best_model="ua", weight_decay=0.1, seed=5,
                                use_cpu=True, report_to="none")
    settings = probe_settings(args)
    assert (settings.epochs, settings.learning_rate, settings.patience, settings.metric, settings.greater_is_better,
            settings.weight_decay, settings.seed) == (7, 0.01, None, "ua", True, 0.1, 5)
    loss = probe_settings(dataclasses.replace(args, metric_for_best_model="loss", greater_is_better=None))
    assert loss.metric == "loss" and not loss.greater_is_better


def test_what_a_probe_cannot_honour_is_refused_in_one_line(tmp_path):
    args = SERTrainingArguments(output_dir=str(tmp_path), probe=True, use_cpu=True, report_to="none")
    model = ModelArguments(model_name_or_path=None, model_type="wav2vec2")
    with pytest.raises(UsageError, match="--augmentation seed21 cannot apply"):
        check_probe_args(model, DataArguments(corpus="demo", augmentation="seed21"), args)
    with pytest.raises(UsageError, match="use one or the other"):
        check_probe_args(dataclasses.replace(model, init_head_from=str(tmp_path)), DataArguments(corpus="demo"), args)
    probe = head_model_args(model, DataArguments(corpus="demo"), args)
    assert probe.freeze_encoder and probe.use_weighted_layer_sum


# ---- every architecture: probe -> saved checkpoint -> pipeline ----

def _architecture(name, tmp_path):
    if name == "whisper":  # as openai/whisper-* is published: a seq2seq checkpoint in a local folder
        return ModelArguments(model_name_or_path=str(save_tiny_whisper(tmp_path / "whisper")))
    return ModelArguments(model_name_or_path=None, model_type=name,
                          model_config_overrides={**TINY_ENCODERS[name], "num_hidden_layers": 2})


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper"])
def test_a_probe_checkpoint_predicts_in_the_pipeline_what_the_probe_predicts(name, tmp_path):
    torch.manual_seed(0)
    args = probe_model_args(_architecture(name, tmp_path))
    model, feature_extractor = build_model(args, *label_maps(LABELS))
    clips = [write_tone(tmp_path / "audio" / f"{i}.wav", 0.4 + 0.05 * i, 150 + 150 * (i % 3), seed=i)
             for i in range(12)]
    labels = torch.arange(12) % 3
    cache = LayerMeansCache(tmp_path / "cache", encoder_identity(args, model, feature_extractor))
    cache.fill(clips, model, feature_extractor, decode_16k_mono, progress=False)
    means = torch.as_tensor(cache.stack(clips))
    settings = ProbeSettings(epochs=30, learning_rate=3e-2, batch_size=4, patience=None)
    result = train_probe_head(ProbeHead.from_model(model), (means, labels), (means, labels), settings, COMPUTE)
    write_head(result.head, model)
    model.save_pretrained(tmp_path / "out")
    feature_extractor.save_pretrained(tmp_path / "out")

    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["use_weighted_layer_sum"] and "auto_map" not in config
    classifier = pipeline("audio-classification", model=str(tmp_path / "out"), device="cpu")
    with torch.no_grad():
        probs = torch.softmax(result.head(means), -1)
    top = [classifier(str(clip), top_k=1)[0] for clip in clips]
    assert [t["label"] for t in top] == [LABELS[i] for i in probs.argmax(-1).tolist()]
    assert [t["score"] for t in top] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-4)


# ---- LP-FT ----

@pytest.fixture
def probe_dir(tmp_path):
    """A probe output as far as --init_head_from reads it: weights, config, data_args.json."""
    torch.manual_seed(0)
    args = probe_model_args(_architecture("wav2vec2", tmp_path))
    model, feature_extractor = build_model(args, *label_maps(LABELS))
    with torch.no_grad():
        for name in HEAD_PARAMETERS:
            model.get_parameter(name).normal_()
    out = tmp_path / "probe"
    model.save_pretrained(out)
    feature_extractor.save_pretrained(out)
    (out / "data_args.json").write_text(json.dumps(dataclasses.asdict(DataArguments(corpus="demo", fold=5))))
    return out, model, args


def _lpft(probe, **data):
    out, _, args = probe
    training = SERTrainingArguments(output_dir=str(out.parent / "run"), use_cpu=True, report_to="none")
    return head_model_args(dataclasses.replace(args, freeze_encoder=False, use_weighted_layer_sum=False,
                                               init_head_from=str(out)),
                           DataArguments(corpus="demo", **{"fold": 5, **data}), training)


def test_fine_tuning_starts_from_the_probe_head(probe_dir):
    _, probe_model, _ = probe_dir
    args = _lpft(probe_dir)
    assert args.use_weighted_layer_sum and not args.freeze_encoder
    torch.manual_seed(1)
    model, _ = build_model(args, *label_maps(LABELS))
    load_head(model, args.init_head_from)
    for name in HEAD_PARAMETERS:
        assert torch.equal(model.get_parameter(name), probe_model.get_parameter(name)), name


def test_a_probe_cross_validation_gives_each_fold_its_own_head(probe_dir, tmp_path):
    out, _, args = probe_dir
    root = tmp_path / "cv"
    root.mkdir()
    out.rename(root / "fold_5")
    assert _lpft((root, None, args)).init_head_from == str(root / "fold_5")


def test_a_head_that_does_not_fit_is_refused_in_one_line(probe_dir, tmp_path):
    out, _, args = probe_dir
    with pytest.raises(UsageError, match="its probe was trained with fold 5, this run has fold 2"):
        _lpft(probe_dir, fold=2)
    bigger = dataclasses.replace(args, model_config_overrides={**args.model_config_overrides, "hidden_size": 32})
    training = SERTrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none")
    with pytest.raises(UsageError, match="hidden_size 16, this run's 32"):
        head_model_args(dataclasses.replace(bigger, init_head_from=str(out)), DataArguments(corpus="demo", fold=5),
                        training)
    hubert = ModelArguments(model_name_or_path=None, model_type="hubert", init_head_from=str(out),
                            model_config_overrides=args.model_config_overrides)
    with pytest.raises(UsageError, match="model_type wav2vec2, this run's hubert"):
        head_model_args(hubert, DataArguments(corpus="demo", fold=5), training)
    model, _ = build_model(_lpft(probe_dir), *label_maps(["a", "b", "c"]))
    with pytest.raises(UsageError, match="its labels \\['low', 'mid', 'high'\\] differ"):
        load_head(model, out)
    with pytest.raises(UsageError, match="no config.json and model.safetensors"):
        head_model_args(dataclasses.replace(args, init_head_from=str(tmp_path)), DataArguments(corpus="demo"),
                        training)
    assert AutoFeatureExtractor.from_pretrained(out)  # the probe dir itself stays a loadable model

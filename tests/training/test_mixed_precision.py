"""Mixed precision switches on by itself where the CPU/GPU is fast at it, and never touches evaluation."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForAudioClassification

from ser_hf import config as config_module
from ser_hf.config import SERTrainingArguments
from ser_hf.data.collator import AudioCollator
from ser_hf.training.trainer import SERTrainer
from tests.conftest import TINY_ENCODER


def _clips(n=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [{"input_values": torch.randn(4_000 + 800 * i, generator=generator).numpy(), "labels": i % 3}
            for i in range(n)]


def _train(tmp_path, name, **kwargs):
    torch.manual_seed(0)
    config = AutoConfig.for_model("wav2vec2", num_labels=3, feat_extract_norm="layer", **TINY_ENCODER)
    model = AutoModelForAudioClassification.from_config(config)
    args = SERTrainingArguments(output_dir=str(tmp_path / name), max_steps=6, per_device_train_batch_size=4,
                                learning_rate=1e-3, use_cpu=True, report_to="none", save_strategy="no",
                                logging_steps=1, disable_tqdm=True, remove_unused_columns=False, **kwargs)
    trainer = SERTrainer(model=model, args=args, train_dataset=_clips(), eval_dataset=_clips(seed=1),
                         data_collator=AudioCollator())
    dtypes = []
    hook = model.classifier.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    trainer.train()
    hook.remove()
    return trainer, dtypes


@pytest.mark.parametrize("has_bf16, expected", [(True, (True, False)), (False, (False, False))])
@pytest.mark.parametrize("use_cpu", [True, False])
def test_auto_mixed_precision_follows_the_cpu_and_yields_to_explicit_flags(monkeypatch, has_bf16, expected, use_cpu):
    monkeypatch.setattr(config_module.torch.accelerator, "current_accelerator", lambda check_available=False: None)
    monkeypatch.setattr(config_module.torch.cpu, "_is_avx512_bf16_supported", lambda: has_bf16)
    monkeypatch.setattr(config_module.torch.cpu, "_is_amx_tile_supported", lambda: False)
    args = SERTrainingArguments(output_dir="unused", use_cpu=use_cpu, report_to="none")
    assert (args.bf16, args.fp16) == expected
    off = SERTrainingArguments(output_dir="unused", use_cpu=True, report_to="none", auto_mixed_precision=False)
    assert (off.bf16, off.fp16) == (False, False)


@pytest.mark.parametrize("gpu_bf16, expected", [(True, (True, False)), (False, (False, True))])
def test_auto_mixed_precision_on_a_gpu_bf16_from_ampere_fp16_before(monkeypatch, gpu_bf16, expected):
    monkeypatch.setattr(config_module.torch.accelerator, "current_accelerator",
                        lambda check_available=False: torch.device("cuda"))
    monkeypatch.setattr(config_module.torch.cuda, "is_bf16_supported", lambda including_emulation=True: gpu_bf16)
    assert config_module._fast_half_precision(use_cpu=False) == expected
    assert config_module._fast_half_precision(use_cpu=True)[1] is False  # --use_cpu on a GPU machine: no fp16
    monkeypatch.setattr(config_module.torch.accelerator, "current_accelerator",
                        lambda check_available=False: torch.device("mps"))
    assert config_module._fast_half_precision(use_cpu=False) == (False, False)


def test_bf16_trains_in_bf16_evaluates_in_fp32_and_keeps_parity_with_fp32(tmp_path):
    bf16, bf16_dtypes = _train(tmp_path, "bf16", bf16=True)  # autocast runs on any CPU, fast only on some
    fp32, fp32_dtypes = _train(tmp_path, "fp32", auto_mixed_precision=False)
    assert bf16.args.bf16 and torch.bfloat16 in bf16_dtypes and set(fp32_dtypes) == {torch.float32}
    # Evaluation after bf16 training runs the fp32 forward: its logits are the plain model's, as in the pipeline.
    output = bf16.predict(_clips(seed=1))
    bf16.save_model(str(tmp_path / "saved"))
    model = AutoModelForAudioClassification.from_pretrained(tmp_path / "saved").eval()  # as the pipeline loads it
    with torch.no_grad():
        plain = [model(torch.as_tensor(c["input_values"])[None]).logits[0].numpy() for c in _clips(seed=1)]
    np.testing.assert_allclose(output.predictions, np.stack(plain), rtol=1e-5, atol=1e-6)
    # Parity: the same 6 steps in bf16 and fp32 give nearly the same losses.
    losses = [[log["loss"] for log in t.state.log_history if "loss" in log] for t in (bf16, fp32)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=0.05)


@pytest.mark.parametrize("freeze_feature_encoder", [False, True])
def test_trained_convolutions_stay_fp32_under_cpu_autocast(freeze_feature_encoder):
    from ser_hf.training.precision import keep_trained_convolutions_fp32

    config = AutoConfig.for_model("wav2vec2", num_labels=3, feat_extract_norm="layer", **TINY_ENCODER)
    model = AutoModelForAudioClassification.from_config(config)
    if freeze_feature_encoder:
        model.freeze_feature_encoder()
    keys = list(model.state_dict())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    trained = [m for m in convs if m.weight.requires_grad]
    assert keep_trained_convolutions_fp32(model) == len(trained)
    assert keep_trained_convolutions_fp32(model) == 0  # idempotent
    dtypes = {}
    for conv in convs:
        conv.register_forward_hook(lambda m, i, out: dtypes.__setitem__(m, out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(1, 4000)).logits.float().sum().backward()
    assert all(dtypes[m] == (torch.float32 if m in trained else torch.bfloat16) for m in convs)
    assert list(model.state_dict()) == keys  # nothing renamed: saved models load as before
    assert len(trained) == (1 if freeze_feature_encoder else 1 + len(config.conv_dim))  # the positional conv too

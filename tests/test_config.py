from pathlib import Path

import pytest
import yaml

from ser_hf.config import config_fields, parse_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].glob("recipes/configs/*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_config_loads_and_states_its_command(config):
    # A manifest config cannot name the user's file: the command line gives it, as the header says.
    needs_manifest = yaml.safe_load(config.read_text()).get("corpus") == "manifest"
    model_args, data_args, training_args = parse_config(config, ["--manifest", "mine.csv"] if needs_manifest else [])
    assert training_args.metric_for_best_model == "ua"
    assert training_args.remove_unused_columns is False  # the audio column must reach our transform
    text = config.read_text()
    assert text.startswith("#") and "run.sh" in text.splitlines()[1] + text.splitlines()[2]


def test_command_line_wins_over_yaml(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"learning_rate": 1e-4, "fold": 2, "model_type": "wav2vec2",
                                      "model_name_or_path": None, "output_dir": str(tmp_path / "o"),
                                      "model_config_overrides": {"hidden_size": 16}}))
    model_args, data_args, training_args = parse_config(
        config, ["--learning_rate", "3e-3", "--model_config_overrides", '{"hidden_size": 32}', "--freeze_encoder", "true"])
    assert training_args.learning_rate == 3e-3
    assert data_args.fold == 2
    assert model_args.model_config_overrides == {"hidden_size": 32}
    assert model_args.freeze_encoder is True
    assert model_args.model_name_or_path is None


def test_unknown_yaml_field_is_an_error_naming_it(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse_config(config)


def test_invalid_choices_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="padding"):
        parse_config(None, ["--padding", "shortest", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="JSON"):
        parse_config(None, ["--model_config_overrides", "{not json", "--output_dir", str(tmp_path)])


def test_fields_cover_the_three_dataclasses():
    fields = config_fields()
    assert {"model_name_or_path", "fold", "learning_rate", "early_stopping_patience"} <= fields


def test_hub_token_is_never_stored_in_the_arguments_or_the_card(tmp_path, monkeypatch):
    import io

    import torch

    from ser_hf.reporting import command_line

    secret = "hf_" + "x" * 30
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("SER_HF_COMMAND", f"bash run.sh ravdess --hub_token {secret}")
    argv = ["--output_dir", str(tmp_path), "--hub_token", secret]
    _, _, training_args = parse_config(None, argv)
    buffer = io.BytesIO()
    torch.save(training_args, buffer)  # what the Trainer writes as training_args.bin
    assert secret.encode() not in buffer.getvalue()
    assert training_args.hub_token is None
    import os

    assert os.environ["HF_TOKEN"] == secret  # still usable by huggingface_hub for the push
    card_command = command_line("recipes/finetune.py", argv + [f"--hub_token={secret}"])
    assert secret not in card_command and "--hub_token ***" in card_command and "--hub_token=***" in card_command

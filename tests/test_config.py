import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
import yaml

from ser_hf.config import AugmentationPreset, ClassWeighting, Corpus, config_fields, parse_config
from ser_hf.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(ROOT.glob("recipes/configs/*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_config_loads_and_states_its_command(config):
    # A manifest config cannot name the user's file: the command line gives it, as the header says.
    needs_manifest = yaml.safe_load(config.read_text()).get("corpus") == "manifest"
    model_args, data_args, training_args = parse_config(config, ["--manifest", "mine.csv"] if needs_manifest else [])
    # Selection on a metric that class sizes do not dominate (MSP-Podcast: macro-F1, the Odyssey 2024 ranking).
    assert training_args.metric_for_best_model in ("ua", "macro_f1")
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

    from ser_hf.reporting.command import command_line

    secret = "hf_" + "x" * 30
    monkeypatch.delenv("HF_TOKEN", raising=False)
    argv = ["--output_dir", str(tmp_path), "--hub_token", secret]
    _, _, training_args = parse_config(None, argv)
    buffer = io.BytesIO()
    torch.save(training_args, buffer)  # what the Trainer writes as training_args.bin
    assert secret.encode() not in buffer.getvalue()
    assert training_args.hub_token is None and secret not in training_args.to_json_string()
    assert "HF_TOKEN" not in os.environ  # parsing arguments changes no global state
    assert training_args.push_token == secret  # still there for the push
    card_command = command_line("recipes/finetune.py", argv + [f"--hub_token={secret}"],
                                wrapper=f"bash run.sh ravdess --hub_token {secret}")
    assert secret not in card_command
    typed, _, ran = card_command.splitlines()
    assert shlex.split(typed)[-2:] == ["--hub_token", "***"] and shlex.split(ran)[-1] == "--hub_token=***"


# ---- choices checked at parse time, mistakes answered in one line -------------------------------------------

@pytest.mark.parametrize("field,typo,valid", [
    ("augmentation", "sed21", "seed21"), ("class_weighting", "inverted", "inverse"),
    ("plateau_metric", "uaa", "macro_f1"), ("corpus", "ravdes", "ravdess"), ("model_type", "wav2vec", "hubert"),
])
def test_a_choice_typo_fails_naming_the_valid_choices_from_yaml_and_command_line(tmp_path, field, typo, valid):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({field: typo, "output_dir": str(tmp_path / "o")}))
    # argparse checks only what the command line gives; a YAML value must meet the same list.
    with pytest.raises(UsageError, match=rf"{field}.*{typo}.*{valid}"):
        parse_config(config)
    with pytest.raises(UsageError, match=rf"{typo}.*{valid}"):
        parse_config(None, [f"--{field}", typo, "--output_dir", str(tmp_path / "o")])


def test_choice_lists_match_the_registries_they_name():
    from ser_hf.corpora import CORPORA as REGISTERED
    from ser_hf.data.augment import PRESETS
    from ser_hf.training.imbalance import WEIGHTING_SCHEMES

    assert set(get_args(Corpus)) == set(REGISTERED)
    assert set(get_args(AugmentationPreset)) == set(PRESETS)
    assert set(get_args(ClassWeighting)) == set(WEIGHTING_SCHEMES)


def test_unknown_option_suggests_the_field_meant(tmp_path):
    with pytest.raises(UsageError, match="--learnig_rate.*did you mean '--learning_rate'"):
        parse_config(None, ["--learnig_rate", "1e-4", "--output_dir", str(tmp_path)])
    with pytest.raises(UsageError, match="nope.yaml not found"):
        parse_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("argv,message", [
    (["--fold", "9"], "--fold 9 is out of range: folds are 0..5"),
    (["--test_fold", "6"], "--test_fold 6 is out of range"),
    (["--fold", "2", "--test_fold", "2"], "both 2"),
])
def test_fold_arguments_are_checked_before_any_data_work(tmp_path, argv, message):
    with pytest.raises(UsageError, match=message):
        parse_config(None, [*argv, "--output_dir", str(tmp_path)])


def test_commands_answer_a_mistake_in_one_line_with_exit_code_2(tmp_path):
    # As a user runs it: no traceback, the fix in the message, nothing downloaded or created.
    proc = subprocess.run([sys.executable, "-m", "ser_hf.cli", "train", str(ROOT / "recipes/configs/ravdess.yaml"),
                           "--augmentation", "sed21", "--output_dir", str(tmp_path / "out"),
                           "--data_dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ser-hf train: error: argument --augmentation: invalid choice: 'sed21' (choose from 'none', 'seed21', 'light')"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


def test_short_help_puts_our_fields_first_and_stays_short():
    from ser_hf.config import short_help

    text = short_help("recipes/finetune.py")
    headings = [line for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[:3] == ["model:", "data:", "training (ser_hf):"]
    assert "--augmentation {none,seed21,light}" in text and "--learning_rate float" in text
    assert "--no_" not in text  # negated flags carried the positive help
    assert len(text.splitlines()) < 210 and "--help_all" in text


def test_dataloader_settings_fit_the_machine(tmp_path):
    _, _, args = parse_config(None, ["--dataloader_num_workers", "512", "--use_cpu", "true",
                                     "--output_dir", str(tmp_path)])
    assert args.dataloader_num_workers == len(os.sched_getaffinity(0))
    assert args.dataloader_pin_memory is False  # no GPU: pinning only warns
    _, _, args = parse_config(None, ["--dataloader_num_workers", "1", "--output_dir", str(tmp_path)])
    assert args.dataloader_num_workers == 1  # within the machine: left as asked


def test_a_missing_manifest_is_one_line_with_exit_code_2(tmp_path):
    from ser_hf.commands.train import main

    code = main([str(ROOT / "recipes/configs/custom.yaml"), "--manifest", str(tmp_path / "mine.csv"),
                 "--output_dir", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


def test_a_missing_corpus_folder_is_one_line_with_exit_code_2(tmp_path, capsys):
    from ser_hf.commands.train import main

    code = main([str(ROOT / "recipes/configs/cremad6.yaml"), "--data_dir", str(tmp_path / "nowhere"),
                 "--output_dir", str(tmp_path / "out"), "--model_name_or_path", "null", "--model_type", "wav2vec2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "CREMA-D folder" in err[0] and "nowhere" in err[0]

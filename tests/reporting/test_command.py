"""The command printed on the model card: every spelling of the hub token is redacted, nothing else is touched."""

import shlex

import pytest

from ser_hf.reporting.command import _redact, command_line

SECRET = "hf_notARealTokenButSecret123"


@pytest.mark.parametrize("flag", ["--hub_token", "--hub-token"])
def test_token_value_after_either_spelling_is_redacted(flag):
    argv = ["--output_dir", "out", flag, SECRET, "--push_to_hub", "true"]
    assert _redact(argv) == ["--output_dir", "out", flag, "***", "--push_to_hub", "true"]


@pytest.mark.parametrize("flag", ["--hub_token", "--hub-token"])
def test_token_joined_by_equals_in_either_spelling_is_redacted(flag):
    argv = ["--push_to_hub", "true", f"{flag}={SECRET}", "--seed", "3"]
    assert _redact(argv) == ["--push_to_hub", "true", f"{flag}=***", "--seed", "3"]


def test_only_the_token_is_redacted():
    # Neighbouring hub options and an equals sign inside the token are not secrets of their own.
    argv = ["--hub_model_id", "me/ser", "--hub_strategy", "end", "--hub_token=abc=def", "--hub_private_repo", "true"]
    assert _redact(argv) == ["--hub_model_id", "me/ser", "--hub_strategy", "end", "--hub_token=***",
                             "--hub_private_repo", "true"]
    assert _redact(["--hub_token"]) == ["--hub_token"]  # a trailing flag without a value: nothing to hide
    assert _redact([]) == []


@pytest.mark.parametrize("script, start", [("recipes/finetune.py", ["python", "recipes/finetune.py"]),
                                           ("ser-hf train", ["ser-hf", "train"])])
def test_command_line_is_the_redacted_call_in_shell_syntax(script, start):
    argv = ["recipes/configs/ravdess.yaml", "--output_dir", "runs/with space", "--hub-token", SECRET,
            f"--hub_token={SECRET}", "--model_config_overrides", '{"hidden_size": 16}']
    line = command_line(script, argv)
    assert SECRET not in line and "\n" not in line
    # Pasted into a shell it gives the same arguments, the token aside.
    assert shlex.split(line) == [*start, "recipes/configs/ravdess.yaml", "--output_dir", "runs/with space",
                                 "--hub-token", "***", "--hub_token=***", "--model_config_overrides",
                                 '{"hidden_size": 16}']


def test_wrapper_command_is_redacted_in_both_spellings_and_forms():
    wrapper = f"bash run.sh ravdess --hub-token {SECRET} --seed 3 --hub_token={SECRET}"
    argv = ["--hub_token", SECRET, "--seed", "3"]
    text = command_line("recipes/finetune.py", argv, wrapper=wrapper)
    assert SECRET not in text
    typed, note, ran = text.split("\n")
    assert shlex.split(typed) == ["bash", "run.sh", "ravdess", "--hub-token", "***", "--seed", "3", "--hub_token=***"]
    assert note == "# which ran:"
    assert shlex.split(ran) == ["python", "recipes/finetune.py", "--hub_token", "***", "--seed", "3"]


def test_no_wrapper_means_one_line():
    assert command_line("recipes/finetune.py", ["--seed", "3"], wrapper=None) == "python recipes/finetune.py --seed 3"
    assert command_line("recipes/finetune.py", ["--seed", "3"], wrapper="") == "python recipes/finetune.py --seed 3"


def test_a_wrapper_that_is_not_shell_syntax_is_still_redacted():
    typed = command_line("recipes/finetune.py", [], wrapper='bash run.sh "x --hub_token  SECRET').splitlines()[0]
    assert "SECRET" not in typed

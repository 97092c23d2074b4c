"""Tests for ser_hf.reporting.hub: what leaves the machine, and that the token never shows up in output."""

import logging
from pathlib import Path

import pytest
from huggingface_hub.hf_api import RepoUrl
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

from ser_hf.reporting import hub

SECRET = "hf_NotARealTokenButSecret0123456789"

PUBLISHED = [
    "README.md",
    "all_results.json",
    "config.json",
    "confusion_matrix.png",
    "confusion_matrix[normalized].png",  # glob metacharacters in a name must still match only itself
    "eval_results.json",
    "model.safetensors",
    "plots/training_curves.png",
    "predictions.csv",
    "preprocessor_config.json",
    "train_results.json",
]
PRIVATE = [
    "training_args.bin",
    "data_args.json",  # local corpus paths
    "trainer_state.json",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "checkpoint-10/model.safetensors",
    "checkpoint-10/config.json",
    "checkpoint-10/optimizer.pt",
    "checkpoint-10/scheduler.pt",
    "checkpoint-10/rng_state.pth",
    "checkpoint-10/trainer_state.json",
    "checkpoint-10/training_args.bin",
    "tmp-checkpoint-20/model.safetensors",
    "runs/Nov22_03-00-00_host/events.out.tfevents.1732244400.host.123.0",
    "nested/training_args.bin",
    "model.safetensors.lock",
    "config.json.tmp",
    ".gitattributes",
    ".git/HEAD",
    "plots/.DS_Store",
]


@pytest.fixture
def output_dir(tmp_path):
    root = tmp_path / "outputs" / "demo"
    for rel in PUBLISHED + PRIVATE:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    # Trainer pickles the hub token into training_args.bin; make the fake one hold it too.
    (root / "training_args.bin").write_text(f"hub_token={SECRET}")
    (root / "README.md").write_text("---\nlicense: mit\n---\n# demo\n")
    return root


def test_files_to_upload_is_exactly_the_publishable_files(output_dir):
    assert hub.files_to_upload(output_dir) == PUBLISHED


def test_files_to_upload_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        hub.files_to_upload(tmp_path / "nope")


class FakeHfApi:
    """Records calls instead of talking to the Hub; selects files the way upload_folder does."""

    calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'someone/' + repo_id}")

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        # huggingface_hub adds its default ignore patterns (.git, .cache/huggingface) to the caller's.
        selected = list(
            filter_repo_objects(
                paths,
                allow_patterns=kwargs.get("allow_patterns"),
                ignore_patterns=list(kwargs.get("ignore_patterns") or []) + DEFAULT_IGNORE_PATTERNS,
            )
        )
        self.calls.append(("upload_folder", selected, kwargs))


@pytest.fixture
def fake_api(monkeypatch):
    FakeHfApi.calls = []
    monkeypatch.setattr(hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    return FakeHfApi


def test_push_uploads_exactly_the_listed_files_and_never_shows_the_token(
    output_dir, fake_api, monkeypatch, caplog, capsys
):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(hub, "get_token", lambda: SECRET)
    caplog.set_level(logging.DEBUG, logger="ser_hf")

    url = hub.push_output_dir(output_dir, "ser-demo", private=True)

    assert url == "https://huggingface.co/someone/ser-demo"
    (_, repo_id, create_kwargs), (_, selected, upload_kwargs) = fake_api.calls
    assert repo_id == "ser-demo"
    assert create_kwargs["private"] is True and create_kwargs["exist_ok"] is True
    assert upload_kwargs["repo_id"] == "someone/ser-demo"  # the namespaced id create_repo returned
    assert selected == PUBLISHED
    # token=None: huggingface_hub resolves HF_TOKEN / the saved login itself; we never handle the value.
    assert create_kwargs["token"] is None and upload_kwargs["token"] is None

    captured = capsys.readouterr()
    assert SECRET not in caplog.text + captured.out + captured.err
    assert "Uploading 11 files" in caplog.text


def test_push_forwards_an_explicit_token(output_dir, fake_api, monkeypatch):
    monkeypatch.setattr(hub, "get_token", lambda: None)
    hub.push_output_dir(output_dir, "me/ser-demo", token=SECRET)
    assert [c[2]["token"] for c in fake_api.calls] == [SECRET, SECRET]


def test_push_without_token_says_how_to_log_in(output_dir, fake_api, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(RuntimeError, match=r"hf auth login.*HF_TOKEN"):
        hub.push_output_dir(output_dir, "me/ser-demo")
    assert fake_api.calls == []


def test_push_refuses_in_offline_mode(output_dir, fake_api, monkeypatch):
    monkeypatch.setattr(hub, "get_token", lambda: SECRET)
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        hub.push_output_dir(output_dir, "me/ser-demo")
    assert fake_api.calls == []

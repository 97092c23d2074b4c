"""Checkpoints on a disk that is, or becomes, full: refused before the first step when they cannot fit; a full disk
while one is written is one line (exit 1) with no half checkpoint left, and `--resume true` then finishes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForAudioClassification, TrainingArguments

from ser_hf.commands.train import main as train_command
from ser_hf.training import disk_space
from ser_hf.training.checkpoints import checkpoint_problems
from ser_hf.training.disk_space import checkpoint_bytes, checkpoints_at_once, planned_saves
from tests.conftest import TINY_ENCODER, make_ravdess_tree, tiny_run_args

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "recipes/configs/ravdess.yaml"
# One checkpoint per step, three steps, every checkpoint kept: the third save is the one a test makes fail.
STEPS = dict(max_steps=3, save_strategy="steps", save_steps=1, save_total_limit=3, eval_strategy="steps",
             eval_steps=1, per_device_eval_batch_size=8, report_to="none")
# An encoder big enough that its checkpoints do not fit on the 2 MB disk (about 0.25 M weights, 3 MB a checkpoint).
WIDE = {**TINY_ENCODER, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
        "classifier_proj_size": 64}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_ravdess_tree(tmp_path_factory.mktemp("ravdess"), actors=4, seconds=(0.4, 0.6))


def _args(**fields):
    return TrainingArguments(output_dir="unused", report_to="none", **fields)


def test_planned_saves_and_checkpoints_on_disk_at_once():
    assert planned_saves(_args(num_train_epochs=8, save_strategy="epoch"), train_clips=100) == 8
    assert planned_saves(_args(max_steps=50, save_strategy="steps", save_steps=20), train_clips=100) == 2
    assert planned_saves(_args(num_train_epochs=1, save_strategy="no"), train_clips=100) == 0
    # Kept ones + the one being written; with load_best_model_at_end the best one stays beside the newest.
    assert checkpoints_at_once(_args(save_strategy="epoch", save_total_limit=2), saves=8) == 3
    best = _args(save_strategy="epoch", eval_strategy="epoch", save_total_limit=1, load_best_model_at_end=True)
    assert checkpoints_at_once(best, saves=8) == 3
    assert checkpoints_at_once(_args(save_strategy="epoch"), saves=4) == 4  # no limit: every save stays
    assert checkpoints_at_once(_args(save_strategy="no"), saves=0) == 0


@pytest.mark.slow
def test_the_estimate_is_the_size_of_a_real_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    argv = tiny_run_args(corpus, out, config=CONFIG, model_config_overrides=WIDE, **{**STEPS, "max_steps": 1})
    assert train_command(argv) == 0
    real = sum(f.stat().st_size for f in (out / "checkpoint-1").rglob("*") if f.is_file())
    estimate = checkpoint_bytes(AutoModelForAudioClassification.from_pretrained(out))
    assert real > 2**20 and abs(estimate - real) < 0.1 * real + 2**20, (estimate, real)


def test_checkpoints_that_cannot_fit_stop_the_run_before_the_first_step(small_disk, corpus):
    argv = tiny_run_args(corpus, small_disk / "run", config=CONFIG, model_config_overrides=WIDE, **STEPS)
    proc = subprocess.run([sys.executable, "-m", "ser_hf.cli", "train", *argv], capture_output=True, text=True,
                          timeout=300)
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and f"not enough free space in {small_disk / 'run'} for 3 checkpoints" in errors[0]
    assert "--save_total_limit 1" in errors[0] and "--output_dir" in errors[0]
    assert not list((small_disk / "run").glob("checkpoint-*"))


def _no_half_checkpoint(out):
    for checkpoint in out.glob("checkpoint-*"):
        assert not checkpoint_problems(checkpoint), checkpoint


def test_a_full_disk_while_a_checkpoint_is_written_then_resume(corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = tiny_run_args(corpus, out, config=CONFIG, **STEPS)
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):  # the third checkpoint's optimizer.pt: half written, then what PyTorch says
        calls.append(f)
        if str(f).endswith("checkpoint-3/optimizer.pt"):
            Path(f).write_bytes(b"PK\x03\x04 half an archive")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 8448 vs 8342")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert train_command(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and f"writing checkpoint-3 in {out} failed: the disk is full or failing" in errors[0]
    assert "rerun with --resume true" in errors[0]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    _no_half_checkpoint(out)
    assert not list(tqdm._instances)  # no progress bar left open to print itself after the error, at exit
    monkeypatch.setattr(torch, "save", real_save)
    assert train_command([*argv, "--resume", "true"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "ser_results.json").is_file()
    assert (out / "checkpoint-3").is_dir()  # trained from checkpoint-2 on


@pytest.mark.slow
def test_a_real_full_disk_at_the_first_checkpoint_then_resume_after_freeing_space(small_disk, corpus, monkeypatch,
                                                                                   capsys):
    out = small_disk / "run"
    argv = tiny_run_args(corpus, out, config=CONFIG, **STEPS)
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - 96 * 2**10))
    monkeypatch.setattr(disk_space, "require_free_space", lambda *args: None)  # the check would refuse; fill for real
    assert train_command(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "--resume true" in errors[0], errors
    _no_half_checkpoint(out)
    ballast.unlink()  # (the check stays off: it keeps 50 MB spare, more than this disk has)
    assert train_command([*argv, "--resume", "true"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "ser_results.json").is_file()


@pytest.mark.slow
def test_a_full_disk_while_the_final_model_is_written_then_resume(corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = tiny_run_args(corpus, out, config=CONFIG, **STEPS)
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if ".final-tmp-" in str(f):
            raise OSError(28, os.strerror(28), str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert train_command(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and f"writing the final model in {out} failed: No space left on device" in errors[0]
    assert not list(out.glob(".final-tmp-*")) and not (out / "model.safetensors").exists()
    monkeypatch.setattr(torch, "save", real_save)
    assert train_command([*argv, "--resume", "true"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "ser_results.json").is_file()

"""Runs that survive: SIGKILL then resume equals an uninterrupted run; SIGTERM saves and exits; one run per
output dir; a finished run is not overwritten; same seed, same metrics; 2 processes count each clip once."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ser_hf.training.output_dir import LOCK_NAME
from tests.conftest import TINY_ENCODER, tiny_run_args

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _command(data_dir, output_dir, **overrides):
    settings = dict(
        model_config_overrides={**TINY_ENCODER, "feat_extract_norm": "group"}, max_steps=40,
        per_device_train_batch_size=4, gradient_accumulation_steps=1, per_device_eval_batch_size=8,
        learning_rate="3e-3", lr_scheduler_type="reduce_lr_on_plateau", plateau_patience=0, eval_strategy="steps",
        eval_steps=5, save_strategy="steps", save_steps=5, load_best_model_at_end=True, early_stopping_patience=100,
        logging_steps=5, seed=3, disable_tqdm=True)
    return tiny_run_args(data_dir, output_dir, corpus=None, config=ROOT / "recipes/configs/ravdess.yaml",
                         **{**settings, **overrides})


def _python(args, **kwargs):
    return subprocess.Popen([sys.executable, str(ROOT / "recipes/finetune.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


# Waits end on a state (a file written, a process exited); the bounds only keep a stuck run from hanging the
# suite, so they are generous for a loaded 2-core machine and cost nothing when things go right.
TIMEOUT = 600


def _wait_for(path, proc, timeout=TIMEOUT, ready=lambda path: path.exists()):
    deadline = time.time() + timeout
    while not ready(path):
        assert proc.poll() is None, f"run ended before {path.name} appeared:\n{proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def _finish(proc, timeout=TIMEOUT):
    """The run's output once it has exited; a run still going after `timeout` is killed (not left behind)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"pid {proc.pid} still running after {timeout} s, killed:\n{out[-3000:]}")
    return out


def _locked_by(pid):
    """Whether the lock file is complete (not just created) and names `pid`."""
    def ready(path):
        try:
            return json.loads(path.read_text())["pid"] == pid
        except (OSError, ValueError, KeyError):
            return False
    return ready


def _assert_same_run(a, b):
    # Steps, best checkpoint, UA, the LR schedule (plateau state) and early-stopping patience must match
    # exactly; losses within float noise of CPU kernels (seen: 2.6e-4 after 30 steps).
    assert a["global_step"] == b["global_step"] and a["best"] == b["best"]
    assert a["patience_counter"] == b["patience_counter"] and a["results"] == b["results"]
    assert [s for s, _ in a["rates"]] == [s for s, _ in b["rates"]]
    assert [r for _, r in a["rates"]] == pytest.approx([r for _, r in b["rates"]], rel=1e-6)
    assert [(s, ua) for s, _, ua in a["evals"]] == [(s, ua) for s, _, ua in b["evals"]]
    assert [loss for _, loss, _ in a["evals"]] == pytest.approx([loss for _, loss, _ in b["evals"]], abs=2e-3)


def _summary(output_dir):
    state = json.loads((output_dir / "trainer_state.json").read_text())
    evals = [(e["step"], e["eval_loss"], e["eval_ua"]) for e in state["log_history"] if "eval_loss" in e]
    rates = [(e["step"], e["learning_rate"]) for e in state["log_history"] if "learning_rate" in e]
    stopping = state["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"]
    return {"global_step": state["global_step"], "evals": evals, "rates": rates, "patience_counter": stopping,
            "best": Path(state["best_model_checkpoint"]).name,
            "results": json.loads((output_dir / "ser_results.json").read_text())["validation"]["ua"]}


@pytest.fixture(scope="module")
def uninterrupted(ravdess_tree, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    proc = _python(_command(ravdess_tree, output_dir))
    out = _finish(proc)
    assert proc.returncode == 0, out[-3000:]
    return output_dir


def test_sigkill_then_resume_equals_an_uninterrupted_run(ravdess_tree, uninterrupted, tmp_path):
    output_dir = tmp_path / "killed"
    proc = _python(_command(ravdess_tree, output_dir))
    _wait_for(output_dir / "checkpoint-15" / "trainer_state.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (output_dir / "model.safetensors").exists()

    resumed = _python(_command(ravdess_tree, output_dir, resume=True))  # also takes over the dead lock
    out = _finish(resumed)
    assert resumed.returncode == 0, out[-3000:]
    assert "Resuming from" in out
    _assert_same_run(_summary(output_dir), _summary(uninterrupted))


def test_a_second_run_into_a_live_output_dir_is_refused(ravdess_tree, tmp_path):
    output_dir = tmp_path / "busy"
    first = _python(_command(ravdess_tree, output_dir, max_steps=100000))
    try:
        # The lock is all the refusal depends on: it is taken before any data or model is loaded.
        _wait_for(output_dir / LOCK_NAME, first, ready=_locked_by(first.pid))
        # Paused, the first run stays alive and keeps its lock but leaves the CPU to the second one, whose
        # start-up would otherwise race a training run for the cores.
        first.send_signal(signal.SIGSTOP)
        try:
            second = _python(_command(ravdess_tree, output_dir))
            out = _finish(second)
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode != 0 and "Another run" in out and str(first.pid) in out
        assert first.poll() is None  # the first run is untouched
        assert _locked_by(first.pid)(output_dir / LOCK_NAME)
    finally:
        first.kill()
        first.wait(timeout=60)


def test_same_seed_gives_the_same_metrics(ravdess_tree, uninterrupted, tmp_path):
    proc = _python(_command(ravdess_tree, tmp_path / "again"))
    out = _finish(proc)
    assert proc.returncode == 0, out[-3000:]
    _assert_same_run(_summary(tmp_path / "again"), _summary(uninterrupted))


@pytest.mark.parametrize("sig,code,group", [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, True),
                                            (signal.SIGTERM, 143, False)],
                         ids=["SIGTERM to the job", "Ctrl-C", "kill PID"])
def test_signal_saves_a_checkpoint_and_exits(ravdess_tree, tmp_path, sig, code, group):
    output_dir = tmp_path / "preempted"
    # A run far too long to finish by itself: the signal must find it training, however fast this machine is.
    # Two dataloader workers. A terminal's Ctrl-C and a scheduler's pre-emption reach every process of the group
    # (workers included), `kill PID` the training process alone: each time the run saves, stops its workers and
    # says so once.
    command = _command(ravdess_tree, output_dir, save_steps=1000, save_strategy="steps",
                       load_best_model_at_end=False, max_steps=100000, dataloader_num_workers=2)
    proc = _python(command, start_new_session=True)
    _wait_for(output_dir / "diagnostics.json", proc)  # written at the first evaluation: training is under way
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out = _finish(proc)
    assert proc.returncode == code, out[-3000:]
    checkpoints = list(output_dir.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "optimizer.pt").exists()
    assert sig.name in out and "--resume true" in out and "Traceback" not in out
    assert out.count(f"Received {sig.name}") == 1, out[-3000:]

    # The hurried user's rerun, without --resume: refused in one line, the checkpoint left as it was.
    saved = {p.name: p.read_bytes() for p in checkpoints[0].iterdir() if p.is_file()}
    rerun = subprocess.run([sys.executable, str(ROOT / "recipes/finetune.py"), *command], capture_output=True,
                           text=True, timeout=TIMEOUT)
    assert rerun.returncode == 2, rerun.stderr[-3000:]
    error = [line for line in rerun.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "Traceback" not in rerun.stderr
    assert f"holds an interrupted run ({checkpoints[0].name}" in error[0] and "--resume true" in error[0]
    assert {p.name: p.read_bytes() for p in checkpoints[0].iterdir() if p.is_file()} == saved


def test_a_finished_run_is_not_overwritten(ravdess_tree, uninterrupted):
    before = (uninterrupted / "model.safetensors").read_bytes()
    proc = _python(_command(ravdess_tree, uninterrupted))
    out = _finish(proc)
    assert proc.returncode != 0 and "--overwrite_output_dir" in out
    assert (uninterrupted / "model.safetensors").read_bytes() == before


def test_two_processes_count_each_clip_once(ravdess_tree, uninterrupted, tmp_path):
    output_dir = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
         str(ROOT / "recipes/finetune.py"), *_command(ravdess_tree, output_dir, max_steps=10)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    with open(output_dir / "predictions_validation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and len({r["path"] for r in rows}) == 16  # no duplicates from sampler padding
    # The same checkpoint evaluated in one process through the pipeline gives the same labels.
    from transformers import pipeline

    classifier = pipeline("audio-classification", model=str(output_dir), device="cpu")
    assert all(classifier(str(ravdess_tree / r["path"]), top_k=1)[0]["label"] == r["predicted"] for r in rows)

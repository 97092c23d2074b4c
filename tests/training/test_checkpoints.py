"""Checked resumption, output-dir lock, finished-run guard and atomic final save, on real Trainer checkpoints."""

import json
import logging
import os
import queue
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForAudioClassification, TrainerCallback

from ser_hf.training import checkpoints
from ser_hf.training.checkpoints import checkpoint_problems, latest_intact_checkpoint, resolve_resume
from ser_hf.training.final_save import save_final_model_atomically
from ser_hf.training.output_dir import (
    LOCK_NAME,
    InterruptedRunExists,
    OutputDirLock,
    _process_start,
    check_output_dir,
    finished_run,
)
from tests.conftest import tiny_trainer as _trainer


@pytest.fixture
def run_dir(trained, tmp_path):
    """A private copy of the trained output dir, free to break."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_checkpoint_holds_what_the_trainer_writes(trained):
    names = {p.name for p in (trained / "checkpoint-4").iterdir()}
    assert {"model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
            "trainer_state.json", "training_args.bin", "preprocessor_config.json"} <= names
    assert checkpoint_problems(trained / "checkpoint-4") == []
    assert checkpoint_problems(trained / "checkpoint-4", thorough=True) == []


def test_intact_run_resumes_from_newest(run_dir):
    assert latest_intact_checkpoint(run_dir) == str(run_dir / "checkpoint-4")
    assert resolve_resume("auto", run_dir) == str(run_dir / "checkpoint-4")
    assert resolve_resume(True, run_dir) == str(run_dir / "checkpoint-4")


def _break_truncated_weights(c):
    _truncate(c / "model.safetensors")


def _break_truncated_weights_header(c):
    _truncate(c / "model.safetensors", keep=0.001)


def _break_truncated_optimizer(c):
    _truncate(c / "optimizer.pt")


def _break_truncated_optimizer_tail(c):
    _truncate(c / "optimizer.pt", keep=0.999)  # only the zip central directory lost


def _break_missing_optimizer(c):
    (c / "optimizer.pt").unlink()


def _break_missing_scheduler(c):
    (c / "scheduler.pt").unlink()


def _break_missing_rng(c):
    (c / "rng_state.pth").unlink()


def _break_truncated_rng(c):
    _truncate(c / "rng_state.pth")


def _break_empty_folder(c):
    shutil.rmtree(c)
    c.mkdir()


def _break_missing_state(c):
    (c / "trainer_state.json").unlink()


def _break_truncated_state(c):
    _truncate(c / "trainer_state.json")


def _break_missing_weights(c):
    (c / "model.safetensors").unlink()


@pytest.mark.parametrize(("breaker", "reason"), [
    (_break_truncated_weights, "model.safetensors is truncated"),
    (_break_truncated_weights_header, "model.safetensors is truncated"),
    (_break_truncated_optimizer, "optimizer.pt is truncated"),
    (_break_truncated_optimizer_tail, "optimizer.pt is truncated"),
    (_break_missing_optimizer, "optimizer.pt is missing"),
    (_break_missing_scheduler, "scheduler.pt is missing"),
    (_break_missing_rng, "rng_state.pth is missing"),
    (_break_truncated_rng, "rng_state.pth is truncated"),
    (_break_empty_folder, "model weights are missing"),
    (_break_missing_state, "trainer_state.json is missing"),
    (_break_truncated_state, "trainer_state.json is not valid JSON"),
    (_break_missing_weights, "model weights are missing"),
])
def test_broken_newest_checkpoint_is_skipped_with_a_warning(run_dir, caplog, breaker, reason):
    breaker(run_dir / "checkpoint-4")
    assert any(reason in p for p in checkpoint_problems(run_dir / "checkpoint-4"))
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.checkpoints"):
        assert latest_intact_checkpoint(run_dir) == str(run_dir / "checkpoint-2")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("checkpoint-4: ") and reason in warnings[0]
    assert "resuming from checkpoint-2 instead" in warnings[0]


def test_step_order_is_numeric_not_alphabetical(run_dir):
    shutil.copytree(run_dir / "checkpoint-2", run_dir / "checkpoint-10")
    assert latest_intact_checkpoint(run_dir) == str(run_dir / "checkpoint-10")


def test_no_intact_checkpoint(run_dir, caplog):
    _truncate(run_dir / "checkpoint-4" / "optimizer.pt")
    (run_dir / "checkpoint-2" / "rng_state.pth").unlink()
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.checkpoints"):
        assert latest_intact_checkpoint(run_dir) is None
        assert resolve_resume("last", run_dir) is None
    assert any("checkpoint-2: rng_state.pth is missing" in r.getMessage() for r in caplog.records)


def test_no_checkpoints_at_all(tmp_path):
    assert latest_intact_checkpoint(tmp_path) is None
    assert latest_intact_checkpoint(tmp_path / "does-not-exist") is None


def test_thorough_check_finds_nan_weights(run_dir):
    from safetensors.torch import load_file, save_file

    path = run_dir / "checkpoint-4" / "model.safetensors"
    tensors = load_file(path)
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name][..., 0] = float("nan")
    save_file(tensors, path, metadata={"format": "pt"})
    assert checkpoint_problems(run_dir / "checkpoint-4") == []  # the cheap check reads headers only
    assert any("NaN" in p for p in checkpoint_problems(run_dir / "checkpoint-4", thorough=True))


def test_explicit_broken_checkpoint_is_refused(run_dir):
    (run_dir / "checkpoint-4" / "optimizer.pt").unlink()
    with pytest.raises(ValueError, match="checkpoint-4.*optimizer.pt is missing"):
        resolve_resume(str(run_dir / "checkpoint-4"), run_dir)
    with pytest.raises(ValueError, match="not a directory"):
        resolve_resume(str(run_dir / "checkpoint-99"), run_dir)
    assert resolve_resume(str(run_dir / "checkpoint-2"), run_dir) == str(run_dir / "checkpoint-2")


@pytest.mark.parametrize("value", [None, False, ""])
def test_no_resume(run_dir, value):
    assert resolve_resume(value, run_dir) is None


class _Watch(TrainerCallback):
    """What the run looked like when it began, and which optimizer steps it took itself."""

    def __init__(self):
        self.start_step, self.start_weights, self.steps = None, None, []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start_step = state.global_step
        self.start_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_trainer_resumes_from_the_chosen_checkpoint(run_dir):
    from safetensors.torch import load_file

    _truncate(run_dir / "checkpoint-4" / "optimizer.pt")
    checkpoint = latest_intact_checkpoint(run_dir)
    assert checkpoint == str(run_dir / "checkpoint-2")
    saved = load_file(run_dir / "checkpoint-2" / "model.safetensors")
    trainer = _trainer(run_dir, max_steps=6)
    watch = _Watch()
    trainer.add_callback(watch)
    trainer.train(resume_from_checkpoint=checkpoint)
    # A run from scratch also ends at step 6 with an intact checkpoint-6; only a resumed one starts at step 2
    # with checkpoint-2's weights and takes just the 4 remaining steps.
    assert watch.start_step == 2
    assert watch.steps == [3, 4, 5, 6]
    assert set(saved) <= set(watch.start_weights)
    for name, tensor in saved.items():
        assert torch.equal(watch.start_weights[name], tensor), name
    assert trainer.state.global_step == 6
    assert checkpoint_problems(run_dir / "checkpoint-6") == []


# ---- output-dir lock ------------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from ser_hf.training.output_dir import OutputDirLock
    with OutputDirLock({out!r}):
        print("locked", flush=True)
        sys.stdin.read()  # hold until the test closes stdin or kills us
""")


# Bounds on every wait for a child process: generous for a loaded 2-core machine, but a stalled child fails
# the test with a message instead of hanging the suite.
CHILD_TIMEOUT = 120


def _dead_pid():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT)
    return int(done.stdout)


def _first_line(proc, timeout=CHILD_TIMEOUT):
    """The child's first line of stdout, read in a thread so that a child that never prints cannot block us."""
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"child pid {proc.pid} printed no line within {timeout} s (still running: {proc.poll() is None})")


def test_lock_is_created_and_released(tmp_path):
    out = tmp_path / "out"
    with OutputDirLock(out) as lock:
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["hostname"] == socket.gethostname() and info["started"]
        assert lock.path == out / LOCK_NAME
    assert not (out / LOCK_NAME).exists()


def test_lock_released_on_error(tmp_path):
    with pytest.raises(KeyError), OutputDirLock(tmp_path):
        raise KeyError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_live_holder_refuses_then_sigkilled_holder_is_taken_over(tmp_path, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(out=str(tmp_path))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = _first_line(holder)
        assert line.strip() == "locked", f"lock holder said {line!r}, exit code {holder.poll()}"
        with pytest.raises(RuntimeError, match=rf"(?i)another run \(pid {holder.pid}\b") as err:
            OutputDirLock(tmp_path).acquire()
        assert str(tmp_path / LOCK_NAME) in str(err.value)
        assert "writing into this output dir" in str(err.value)
    finally:
        holder.kill()  # SIGKILL: the holder cannot clean up
        holder.wait(timeout=CHILD_TIMEOUT)
    assert (tmp_path / LOCK_NAME).exists()
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.output_dir"):
        with OutputDirLock(tmp_path):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert any(f"pid {holder.pid}" in r.getMessage() and "Taking over" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_dead_pid_is_taken_over(tmp_path, caplog):
    pid = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "hostname": socket.gethostname(), "started": "x"}))
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.output_dir"), OutputDirLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert any("Taking over" in r.getMessage() for r in caplog.records)


def test_lock_of_reused_pid_is_taken_over(tmp_path):
    # Our own pid, but a different process start time: the run that wrote it died and the pid was reused.
    start = _process_start(os.getpid())
    if start is None:
        pytest.skip("no /proc here")
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "pid_start": start + 1,
                                                 "hostname": socket.gethostname(), "started": "x"}))
    with OutputDirLock(tmp_path):
        pass


def test_half_written_lock_of_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with OutputDirLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_lock_from_other_host_is_refused(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "hostname": "elsewhere.example", "started": "x"}))
    with pytest.raises(RuntimeError, match="elsewhere.example.*delete"):
        OutputDirLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).exists()


def test_disabled_lock_is_a_no_op(tmp_path):
    with OutputDirLock(tmp_path, enabled=False):
        assert not (tmp_path / LOCK_NAME).exists()


# ---- finished runs --------------------------------------------------------------------------------------

def test_finished_run_and_check_output_dir(tmp_path):
    assert not finished_run(tmp_path)
    check_output_dir(tmp_path, overwrite=False, resume=False)  # empty: fine
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert not finished_run(tmp_path)  # config.json missing: not the end of our recipe
    (tmp_path / "config.json").write_text("{}")
    assert finished_run(tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite_output_dir true.*--resume true"):
        check_output_dir(tmp_path, overwrite=False, resume=False)
    check_output_dir(tmp_path, overwrite=True, resume=False)
    check_output_dir(tmp_path, overwrite=False, resume=True)


def test_checkpoints_alone_are_not_a_finished_run(trained):
    assert not finished_run(trained)  # the fixture never called save_model at the top level


def test_an_interrupted_run_is_refused_unless_resumed_or_started_over(trained, tmp_path, caplog):
    # A rerun without --resume would start at step 0 and let the checkpoint rotation delete the interrupted run's
    # checkpoints: refused, naming the newest one and how far it got.
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with pytest.raises(InterruptedRunExists, match=r"interrupted run \(checkpoint-4, step 4 of 4\).*--resume true"):
        check_output_dir(run, overwrite=False, resume=False)
    check_output_dir(run, overwrite=False, resume=True)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    # Starting over is said, and leaves none of the earlier run's checkpoints among the new run's.
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.output_dir"):
        check_output_dir(run, overwrite=True, resume=False)
    assert "removing the earlier run's checkpoint-2, checkpoint-4" in caplog.text
    assert not list(run.glob("checkpoint-*"))
    check_output_dir(run, overwrite=False, resume=False)  # nothing left to protect


# ---- atomic final save ----------------------------------------------------------------------------------

@pytest.fixture
def trainer_after(run_dir):
    trainer = _trainer(run_dir, max_steps=4)
    trainer.state.global_step = 4
    return trainer


def test_final_save_writes_the_model(run_dir, trainer_after):
    moved = save_final_model_atomically(trainer_after)
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} <= set(moved)
    assert finished_run(run_dir)
    assert not list(run_dir.glob(".final-tmp-*"))
    model = AutoModelForAudioClassification.from_pretrained(run_dir)
    assert model.config.num_labels == 3
    # Every file of the model gets the mode an ordinary new file has: a shared model folder is readable by all
    # that may read the rest of it (the weights once arrived as a private 0600 temporary file).
    (run_dir / "probe").write_text("x")
    expected = stat.S_IMODE((run_dir / "probe").stat().st_mode)
    assert {name: stat.S_IMODE((run_dir / name).stat().st_mode) for name in moved} == dict.fromkeys(moved, expected)


def test_crash_during_final_save_keeps_previous_model(run_dir, trainer_after, monkeypatch):
    save_final_model_atomically(trainer_after)
    before = (run_dir / "model.safetensors").read_bytes()

    def crashing_save(output_dir=None, _internal_call=False):
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(before[:100])  # a partial write
        raise OSError("No space left on device")

    monkeypatch.setattr(trainer_after, "save_model", crashing_save)
    with pytest.raises(OSError, match="No space"):
        save_final_model_atomically(trainer_after)
    assert (run_dir / "model.safetensors").read_bytes() == before
    assert not list(run_dir.glob(".final-tmp-*"))


def test_stale_temp_dir_and_old_shards_are_cleaned(run_dir, trainer_after):
    (run_dir / ".final-tmp-99").mkdir()
    (run_dir / ".final-tmp-99" / "model.safetensors").write_bytes(b"partial")
    (run_dir / "model.safetensors.index.json").write_text("{}")  # from an earlier, sharded save
    (run_dir / "model-00001-of-00002.safetensors").write_bytes(b"old")
    save_final_model_atomically(trainer_after)
    assert not list(run_dir.glob(".final-tmp-*"))
    assert not (run_dir / "model.safetensors.index.json").exists()
    assert not (run_dir / "model-00001-of-00002.safetensors").exists()
    assert checkpoints._safetensors_problem(run_dir / "model.safetensors") is None


def test_non_main_process_writes_nothing(run_dir, trainer_after, monkeypatch):
    monkeypatch.setattr(trainer_after, "is_world_process_zero", lambda: False)
    monkeypatch.setattr(type(trainer_after.args), "should_save", property(lambda self: False))
    assert save_final_model_atomically(trainer_after, run_dir / "final") == []
    assert not (run_dir / "final").exists()

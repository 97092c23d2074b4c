"""A new user's first hour: every mistake is one line and exit code 2, nothing done is lost, no number lies.

Each test runs what the user runs (the console script in a fresh process where the answer is the point) on
generated audio, and checks the line they see, the exit code, and what is left on disk.
"""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from ser_hf.config import DataArguments
from ser_hf.data.prepare import prepare_corpus, prepare_splits
from ser_hf.errors import UsageError
from ser_hf.training.diagnostics import TrainingDiagnostics
from tests.conftest import tiny_run_args, write_tone

ROOT = Path(__file__).resolve().parents[2]


def _ser_hf(*args, env=None, timeout=300):
    """`ser-hf ARGS` in a fresh interpreter: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "ser_hf.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def _one_error_line(stderr):
    """The single `PROG: error: ...` line of a refused command (and no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def _manifest(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _clips(folder, labels_by_speaker, seconds=0.5):
    """One generated clip per (speaker, label): rows (path, label, speaker)."""
    rows = []
    for s, (speaker, labels) in enumerate(labels_by_speaker.items()):
        for k, label in enumerate(labels):
            path = write_tone(folder / speaker / f"{label}_{k}.wav", seconds, 200 + 60 * k, seed=100 * s + k)
            rows.append((str(path), label, speaker))
    return rows


def _train(manifest, output_dir, *extra):
    argv = tiny_run_args(None, output_dir, corpus="manifest", config=ROOT / "recipes/configs/custom_small.yaml",
                         manifest=manifest, n_folds=2, fold=0)
    return _ser_hf("train", *argv, *extra)


# ---- lost work and wrong numbers ----

def test_a_corpus_with_one_label_is_refused_before_any_work(tmp_path):
    rows = _clips(tmp_path / "audio", {f"spk{i}": ["calm", "calm"] for i in range(3)})
    code, _, err = _train(_manifest(tmp_path / "m.csv", ["path", "label", "speaker"], rows), tmp_path / "out")
    line = _one_error_line(err)
    assert code == 2 and "at least 2 labels, found 'calm' (6 clips)" in line
    assert not (tmp_path / "out").exists()  # nothing written, no empty folder left to puzzle over


def test_a_label_without_training_clips_is_refused(tmp_path):
    # Only spk0 says "sad", and spk0 is the validation fold: the model could never predict it.
    rows = _clips(tmp_path / "audio", {"spk0": ["happy", "sad"], "spk1": ["happy", "angry"], "spk2": ["angry"],
                                       "spk3": ["happy"]})
    args = DataArguments(corpus="manifest", manifest=str(_manifest(tmp_path / "m.csv", ["path", "label", "speaker"],
                                                                   rows)), n_folds=2, fold=0)
    with pytest.raises(UsageError, match=r"label 'sad' has no training clips \(1 in validation\)"):
        prepare_splits(args)


def test_a_class_the_scan_removed_from_a_split_is_refused(tmp_path):
    rows = _clips(tmp_path / "audio", {f"spk{i}": ["happy", "sad"] for i in range(4)})
    for path, label, speaker in rows:  # every training "sad" clip is text, not audio
        if label == "sad" and speaker in ("spk2", "spk3"):
            Path(path).write_text("not audio")
    args = DataArguments(corpus="manifest", manifest=str(_manifest(tmp_path / "m.csv", ["path", "label", "speaker"],
                                                                   rows)), n_folds=2, fold=0, scan_workers=1)
    with pytest.raises(UsageError, match=r"excluded every train clip of 'sad' \(2 clips\).*data_report.json"):
        prepare_corpus(args, tmp_path / "report")


def _diagnostics(history):
    diagnostics = TrainingDiagnostics(["neutral", "happy", "sad"], collapse_evaluations=1)
    for step, collapsed in history:
        diagnostics.history.append({"step": step, "epoch": step / 10, "predicted": {}, "eval_ua": step / 100,
                                    "collapsed_onto": collapsed})
        if collapsed:
            diagnostics._warn("collapse", f"The model predicts '{collapsed}' ... at step {step}", log=False)
    return diagnostics


def test_the_card_speaks_of_the_saved_model_not_a_passing_collapse():
    # Collapsed onto neutral at step 6 and at the last evaluation; the saved best checkpoint (step 21) is fine.
    diagnostics = _diagnostics([(6, "neutral"), (21, None), (27, "neutral")])
    healthy = [[6, 1, 1], [1, 6, 1], [2, 1, 5]]
    (note,) = diagnostics.card_notes(21, healthy)
    assert "passing state" in note and "step 6" in note and "saved model (step 21) predicts 3 of the 3" in note
    assert "has collapsed" not in note
    collapsed = [[8, 0, 0], [7, 1, 0], [8, 0, 0]]  # the saved model itself answers neutral
    (note,) = _diagnostics([(6, "neutral")]).card_notes(6, collapsed)
    assert note.startswith("The saved model (step 6) predicts 'neutral' for 96% of the 24") and "collapsed" in note
    assert _diagnostics([(6, None)]).card_notes(6, healthy) == []


# ---- mistakes answered by one line ----

def test_a_manifest_with_other_column_names_is_one_line_and_the_flags_map_them(tmp_path):
    rows = _clips(tmp_path / "audio", {f"spk{i}": ["happy", "sad"] for i in range(3)})
    manifest = _manifest(tmp_path / "m.csv", ["file", "emotion", "speaker"], rows)
    code, _, err = _train(manifest, tmp_path / "out")
    line = _one_error_line(err)
    assert code == 2 and "columns present: 'file', 'emotion', 'speaker'" in line
    assert "--path_column COLUMN" in line and "--label_column COLUMN" in line
    # The flags read the user's own columns: the corpus loads, by speaker.
    args = DataArguments(corpus="manifest", manifest=str(manifest), path_column="file", label_column="emotion",
                         n_folds=3, fold=0)
    prepared = prepare_splits(args)
    assert prepared.label_names == ["happy", "sad"] and prepared.speaker_independent


def test_a_manifest_with_one_speaker_is_one_line_with_the_fixes(tmp_path):
    rows = _clips(tmp_path / "audio", {"spk0": ["happy", "sad", "happy", "sad"]})
    code, _, err = _train(_manifest(tmp_path / "m.csv", ["path", "label", "speaker"], rows), tmp_path / "out")
    line = _one_error_line(err)
    assert code == 2 and "needs at least 2 speakers and the corpus has 1 (spk0)" in line
    assert "--train_manifest" in line and "stratified" in line


@pytest.mark.parametrize("command", ["cv", "evaluate", "predict", "baseline", "bench", "export", "app", "search",
                                     "compare", "sweep"])
def test_help_and_typos_are_answered_before_torch_is_imported(command):
    probe = ("import sys\nfrom ser_hf.cli import main\n"
             f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("False"), proc.stdout[-2000:]


def test_an_unknown_option_gets_the_closest_one_and_the_commands_own_help(tmp_path):
    code, _, err = _ser_hf("predict", tmp_path, tmp_path, "--top", "2")  # an abbreviation is not taken
    line = _one_error_line(err)
    assert code == 2 and "--top" in line and "did you mean '--top_k'" in line and "`ser-hf predict --help`" in line
    code, _, err = _ser_hf("evaluate", "--model", tmp_path, "--fodl", "1")
    line = _one_error_line(err)
    assert code == 2 and "did you mean '--fold'" in line and "`ser-hf evaluate --help`" in line


def test_help_shows_the_defaults():
    code, out, _ = _ser_hf("predict", "--help")
    assert code == 0 and "how many emotions to show per file (default: 3)" in " ".join(out.split())


def test_the_demo_showcases_a_clip_the_model_gets_right(tmp_path):
    from ser_hf.reporting.results import showcase_clip

    run = tmp_path / "run"
    run.mkdir()
    (run / "data_args.json").write_text(f'{{"data_dir": "{tmp_path / "data"}"}}')
    _manifest(run / "predictions_validation.csv", ["path", "speaker", "true", "predicted", "confidence"],
              [("a.wav", "s", "neutral", "sad", "0.9"), ("b.wav", "s", "sad", "sad", "0.6"),
               ("c.wav", "s", "angry", "angry", "0.8")])
    assert showcase_clip(run) == (str(tmp_path / "data" / "c.wav"), "angry", True, 2, 3)


# ---- rough edges ----

def test_one_excluded_file_is_one_file():
    from ser_hf.data.scan import data_report, report_markdown

    report = data_report({"train": [{"path": "x.wav", "label": "sad", "reason": "empty", "detail": "0-byte file"}]})
    assert "**1 file excluded**" in report_markdown(report)


def test_export_keeps_the_tracers_warnings_out_unless_verbose(tmp_path, monkeypatch):
    import warnings

    import torch

    from ser_hf.console import known_noise

    def export():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with known_noise(warning_categories=(torch.jit.TracerWarning,)):
                warnings.warn("Converting a tensor to a Python boolean", torch.jit.TracerWarning)
                warnings.warn("a warning the user can act on", UserWarning)
        return [type(w.message).__name__ for w in caught]

    assert export() == ["UserWarning"]
    monkeypatch.setenv("SER_HF_VERBOSE", "1")
    assert export() == ["TracerWarning", "UserWarning"]


def test_known_log_noise_is_dropped_and_put_back(caplog):
    import logging

    from ser_hf.console import known_noise

    filters = [list(h.filters) for h in logging.getLogger().handlers]
    with caplog.at_level(logging.WARNING):
        with known_noise(log_prefixes=("Please consider",)):
            logging.warning("Please consider to run pre-processing before quantization")
            logging.warning("the model file is missing")
    assert "Please consider" not in caplog.text and "the model file is missing" in caplog.text
    assert [list(h.filters) for h in logging.getLogger().handlers] == filters  # put back as they were


def test_setup_installs_the_cpu_wheel_where_there_is_no_nvidia_gpu(tmp_path):
    # run.sh against a fake interpreter that records what pip was asked: the decision logic, not the download.
    for name in ("run.sh", "requirements.txt", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    log = tmp_path / "pip.log"
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {log}
case "$*" in
  *"import sys, torch"*) exit 1 ;;                                   # torch is not installed yet
  *"download.pytorch.org/whl/cpu"*) exit "${{CPU_INDEX_EXIT:-0}}" ;;
  *"import torch; print(torch.__version__)"*) echo 2.13.0+cpu ;;
  *"import torch, transformers, datasets"*) echo "torch 2.13.0+cpu, transformers x, datasets y" ;;
esac
exit 0
""")
    fake.chmod(0o755)
    # This machine's commands, without nvidia-smi (on a GPU machine too): a CPU-only machine.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else ():
            if tool.name != "nvidia-smi" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    path = str(bin_dir)
    run = subprocess.run(["bash", "run.sh", "setup"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": path, "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    calls = log.read_text().splitlines()
    assert any("torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in c for c in calls)
    assert "no NVIDIA GPU found: installed torch==2.13.0, CPU build (2.13.0+cpu)" in run.stderr
    # The CPU index unreachable: PyPI's wheel, said so.
    (tmp_path / ".venv" / ".requirements.sha256").unlink()
    log.unlink()
    run = subprocess.run(["bash", "run.sh", "setup"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": path, "HOME": str(tmp_path), "CPU_INDEX_EXIT": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "CPU wheel index cannot be reached" in run.stderr
    assert any(c.endswith("-m pip install -q torch==2.13.0") for c in log.read_text().splitlines())

"""Storage faults must not cost a run: a full disk before or during the audio cache's fill, temporary files left by a
killed fill, a damaged cache entry. Real full disks on a small tmpfs where this machine lets us mount one; the same
faults injected at the write calls always (so the suite also runs where mounting is not allowed)."""

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ser_hf import storage
from ser_hf.console import command
from ser_hf.data import audio_cache
from ser_hf.data.audio import decode_16k_mono
from ser_hf.data.audio_cache import DecodedAudioCache, entry_intact
from ser_hf.data.scan import scan_files
from ser_hf.errors import UsageError, WriteFailed
from tests.conftest import make_ravdess_tree, tiny_run_args, write_tone

ROOT = Path(__file__).resolve().parents[2]


def _clips(folder, n=6, seconds=1.0):
    return [write_tone(folder / f"{i}.wav", seconds, 200 + 30 * i, seed=i) for i in range(n)]


# ---- a damaged entry is decoded again, never read into a batch ----

@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_entry_is_found_by_fill_and_decoded_again(tmp_path, caplog, damage):
    paths = _clips(tmp_path / "audio", n=3)
    cache = DecodedAudioCache(tmp_path / "cache")
    cache.fill(paths, workers=1, progress=False)
    target = cache.entry(paths[1])
    data = target.read_bytes()
    target.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x93NUMPY" + os.urandom(200),
                        "empty": b""}[damage])
    assert not entry_intact(target) and entry_intact(cache.entry(paths[0]))
    assert cache.fill(paths, workers=1, progress=False) == 1  # only the damaged one
    assert "1 entry damaged" in caplog.text and str(paths[1]) in caplog.text
    assert np.array_equal(cache.load(paths[1]), decode_16k_mono(paths[1]))


def test_an_entry_damaged_after_the_fill_is_decoded_again_when_read(tmp_path, caplog):
    path = _clips(tmp_path / "audio", n=1)[0]
    cache = DecodedAudioCache(tmp_path / "cache")
    cache.fill([path], workers=1, progress=False)
    target = cache.entry(path)
    target.write_bytes(target.read_bytes()[:100])  # cut mid-epoch by something else
    assert np.array_equal(cache.load(path), decode_16k_mono(path))
    assert "is damaged" in caplog.text and entry_intact(target)


# ---- too little space: refused before anything is written ----

def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    paths = _clips(tmp_path / "audio")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda _: SimpleNamespace(free=10 * 2**20))
    cache = DecodedAudioCache(tmp_path / "cache")
    with pytest.raises(UsageError, match=r"not enough free space in .* for the audio cache of 6 clips: about 0\.2 MB "
                                         r"needed, 10 MB free\. Free space there, put the caches on another disk with --cache_dir DIR, "
                                         r"or set --audio_cache false"):
        cache.fill(paths, workers=1, progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_a_corpus_on_a_full_disk_stops_training_before_it_starts_in_one_line(small_disk, tmp_path):
    corpus = make_ravdess_tree(small_disk / "ravdess", actors=4, seconds=(0.4, 0.6))
    argv = tiny_run_args(corpus, tmp_path / "out", n_folds=4)
    proc = subprocess.run([sys.executable, "-m", "ser_hf.cli", "train", *argv], capture_output=True, text=True,
                          timeout=300)
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and "for the audio cache of" in errors[0] and "MB free" in errors[0]
    assert not list((corpus / ".ser_hf_audio_cache").glob("*.npy*"))


# ---- the disk fills up during the fill: one line, nothing partial left, the rerun finishes ----

def _full_after(n):
    """np.save that writes half an array and fails with ENOSPC from the (n+1)-th call on."""
    real, calls = np.save, []

    def save(handle, array):
        calls.append(1)
        if len(calls) > n:
            handle.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(handle, array)

    return save


def test_enospc_mid_fill_is_one_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    paths = _clips(tmp_path / "audio")
    cache = DecodedAudioCache(tmp_path / "cache")
    monkeypatch.setattr(audio_cache.np, "save", _full_after(2))
    with pytest.raises(WriteFailed, match=r"writing the audio cache in .* failed after 2 of 6 clips: No space left "
                                          r"on device\. Free space and rerun the same command"):
        cache.fill(paths, workers=1, progress=False)
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(left) == 2 and all(name.endswith(".npy") for name in left)  # the two done, nothing partial
    monkeypatch.undo()
    assert cache.fill(paths, workers=1, progress=False) == 4  # the rerun decodes only the rest


def test_a_real_full_disk_mid_fill_in_worker_processes(small_disk, tmp_path, monkeypatch):
    paths = _clips(tmp_path / "audio", n=12, seconds=3.0)  # ~1.1 MB of entries per 12 clips: two fills overflow 2 MB
    monkeypatch.setattr(audio_cache, "estimated_bytes", lambda path: 0)  # let the fill start: the disk fills anyway
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda _: SimpleNamespace(free=2**40))
    (small_disk / "ballast").write_bytes(b"\0" * (1024 * 1024))
    cache = DecodedAudioCache(small_disk / "cache")
    with pytest.raises(WriteFailed, match="No space left on device"):
        cache.fill(paths, workers=2, progress=False)
    assert not list((small_disk / "cache").glob("*.tmp*"))
    (small_disk / "ballast").unlink()
    cache.fill(paths, workers=2, progress=False)
    assert all(entry_intact(cache.entry(p)) for p in paths)


def test_a_killed_fills_temporary_files_are_removed_by_the_next(tmp_path):
    paths = _clips(tmp_path / "audio", n=2)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    orphan = cache_dir / f"abc-1-2.npy.tmp{dead.stdout.strip()}@{host}"  # its process has exited
    ours = cache_dir / f"def-1-2.npy.tmp{os.getpid()}@{host}"  # a fill still running (this process)
    # Another machine's fills (a cache on a shared disk): its process ids mean nothing here; only age tells.
    elsewhere, abandoned = (cache_dir / f"{k}-1-2.npy.tmp{dead.stdout.strip()}@node-7" for k in ("ghi", "jkl"))
    for path in (orphan, ours, elsewhere, abandoned):
        path.write_bytes(b"half an array")
    os.utime(abandoned, (0, 0))
    DecodedAudioCache(cache_dir).fill(paths, workers=1, progress=False)
    assert not orphan.exists() and ours.exists() and elsewhere.exists() and not abandoned.exists()


def test_a_write_failure_is_one_line_and_exit_code_1(capsys):
    @command()
    def main(argv=None, prog=None):
        raise WriteFailed("writing the audio cache in /data failed after 2 of 6 clips: No space left on device")

    assert main([], prog="ser-hf train") == 1
    err = capsys.readouterr().err
    assert err.strip() == ("ser-hf train: error: writing the audio cache in /data failed after 2 of 6 clips: No space "
                           "left on device")


def test_a_full_disk_under_a_librarys_write_is_one_line_too(capsys, monkeypatch):
    @command()
    def main(argv=None, prog=None):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out/trainer_state.json")
        except OSError as err:
            raise RuntimeError("the Trainer could not save its state") from err

    assert main([], prog="ser-hf train") == 1
    err = capsys.readouterr().err
    assert err.strip() == ("ser-hf train: error: a write failed (No space left on device: 'out/trainer_state.json'). "
                           "Free space and rerun the same command (a training run: with --resume true)")
    monkeypatch.setenv("SER_HF_VERBOSE", "1")
    assert main([], prog="ser-hf train") == 1
    assert "Traceback" in capsys.readouterr().err  # kept for whoever asks


def test_a_bug_keeps_its_traceback():
    @command()
    def main(argv=None, prog=None):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        main([], prog="ser-hf train")


# ---- the audio scan's cache ----

def test_a_damaged_scan_cache_entry_is_scanned_again(tmp_path):
    paths = _clips(tmp_path / "audio", n=2)
    cache = tmp_path / "scan.json"
    first = scan_files(paths, workers=1, cache_path=cache, progress=False)
    blob = json.loads(cache.read_text())
    key = os.path.abspath(paths[0])
    del blob["files"][key]["result"]["duration"]  # valid JSON, a damaged entry
    cache.write_text(json.dumps(blob))
    again = scan_files(paths, workers=1, cache_path=cache, progress=False)
    assert again == first and "duration" in json.loads(cache.read_text())["files"][key]["result"]


def test_a_full_disk_when_saving_the_scan_cache_costs_only_a_rescan(tmp_path, monkeypatch, caplog):
    paths = _clips(tmp_path / "audio", n=2)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "fsync", full)  # where a full disk surfaces on network filesystems
    results = scan_files(paths, workers=1, cache_path=tmp_path / "scan.json", progress=False)
    assert all(result.status == "ok" for result in results.values())
    assert "Could not save the audio scan's cache" in caplog.text and "the next run scans again" in caplog.text
    assert not list(tmp_path.glob("*scan.json*"))  # neither the cache nor its temporary

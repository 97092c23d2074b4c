"""Atomic writes and storage failures (ser_hf/storage.py): a reader sees the old file or the new one, never half; a
full disk is one `WriteFailed` naming the file, with no temporary left behind."""

import errno
import os

import pytest

from ser_hf import storage
from ser_hf.errors import UsageError, WriteFailed
from ser_hf.storage import (
    atomic_output,
    atomic_write,
    is_storage_failure,
    remove_stale_temporaries,
    require_free_space,
    write_text_atomic,
)


def test_atomic_write_replaces_only_a_complete_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(KeyError):
        with atomic_write(target) as handle:
            handle.write("half of the new")
            raise KeyError("the writer crashed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["results.json"]


def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # mkstemp alone would give 0600
    finally:
        os.umask(umask)


def test_enospc_is_one_write_failed_naming_the_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "fsync", full)
    with pytest.raises(WriteFailed, match=r"writing predictions_test\.csv in .* failed: No space left on device "
                                          r"\(.* MB free\)\. Free space and rerun the same command"):
        with atomic_write(tmp_path / "predictions_test.csv") as handle:
            handle.write("path,label\n")
    assert os.listdir(tmp_path) == []


def test_a_library_writing_by_name_on_a_real_full_disk(small_disk):
    target = small_disk / "model.onnx"
    target.write_bytes(b"the previous export")
    with pytest.raises(WriteFailed, match=r"writing model\.onnx in .* failed: No space left on device"):
        with atomic_output(target, "rerun ser-hf export") as tmp:
            tmp.write_bytes(os.urandom(3 * 2**20))  # a 2 MB disk
    assert target.read_bytes() == b"the previous export" and os.listdir(small_disk) == ["model.onnx"]


def test_storage_failures_are_told_from_bugs():
    assert is_storage_failure(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # PyTorch's zip writer and safetensors say it without an errno; a chained cause counts too.
    assert is_storage_failure(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 8448 vs 8342"))
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_storage_failure(wrapped)
    assert not is_storage_failure(OSError(errno.EACCES, "Permission denied"))
    assert not is_storage_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_storage_failure(ValueError("unexpected pos"))  # only errors a write raises


def test_require_free_space_names_the_folder_the_sizes_and_the_fixes(tmp_path):
    require_free_space(tmp_path, 2**20, "one clip", "never said")
    with pytest.raises(UsageError, match=r"not enough free space in .*/not/made for the checkpoints: "
                                          r"about 1,048,576 MB needed, .* MB free\. Free space"):
        require_free_space(tmp_path / "not" / "made", 2**40, "the checkpoints", "free space")


def test_only_temporaries_of_killed_writers_are_removed(tmp_path):
    old, fresh = tmp_path / ".results.json.a1b2.tmp", tmp_path / ".trials.csv.c3d4.tmp"
    for path in (old, fresh, tmp_path / "results.json"):
        path.write_text("x")
    os.utime(old, (0, 0))
    assert remove_stale_temporaries(tmp_path) == [old.name]
    assert sorted(os.listdir(tmp_path)) == [fresh.name, "results.json"]  # a live writer's temporary stays

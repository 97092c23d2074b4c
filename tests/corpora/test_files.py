"""The file walk shared by the corpus loaders, and the constants every layer takes from ser_hf.corpora.files."""

import logging
import os
from pathlib import Path

import pytest

from ser_hf.corpora import files
from ser_hf.corpora.files import DUPLICATES, SkippedFiles, corpus_relative, walk_files
from tests.conftest import touch


def test_walk_is_sorted_skips_hidden_and_named_folders(tmp_path):
    for name in ("b/2.wav", "b/1.wav", "a/x.wav", ".git/lfs/y.wav", "__MACOSX/a/x.wav", "top.wav"):
        touch(tmp_path / name)
    found = [p.relative_to(tmp_path).as_posix() for p in walk_files(tmp_path, skip_dirs=("__MACOSX",))]
    assert found == ["top.wav", "a/x.wav", "b/1.wav", "b/2.wav"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_walk_follows_folder_links_without_looping(tmp_path):
    touch(tmp_path / "real" / "x.wav")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    found = [p.relative_to(tmp_path).as_posix() for p in walk_files(tmp_path)]
    assert found == ["link/x.wav"]  # "link" sorts first; the same real folder is not walked twice


def test_skipped_files_counts_and_logs_once_per_category(tmp_path, caplog):
    skipped = SkippedFiles(tmp_path)
    assert skipped.describe() == "no files at all"
    for i in range(5):
        skipped.add("song files", tmp_path / f"s{i}.wav")
    skipped.add(DUPLICATES, tmp_path / "a" / "x.wav")
    assert skipped.describe() == f"1 {DUPLICATES}; 5 song files"
    with caplog.at_level(logging.INFO, logger="test"):
        skipped.log(logging.getLogger("test"), "RAVDESS")
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (logging.WARNING, f"1 RAVDESS clips appear more than once under {tmp_path} (kept the first in sorted path "
                          f"order), e.g. {Path('a/x.wav')}"),
        (logging.INFO, f"Skipped 5 song files under {tmp_path}, e.g. s0.wav, s1.wav, s2.wav"),
    ]


def test_one_definition_of_each_shared_constant():
    from ser_hf.corpora import cremad, demo, manifest
    from ser_hf.corpora.ravdess import RAVDESS_STATEMENTS
    from ser_hf.data import audio, scan
    from ser_hf.inference import classify as inference

    assert inference.AUDIO_EXTENSIONS is manifest.AUDIO_EXTENSIONS is files.AUDIO_EXTENSIONS
    assert scan.LFS_SIGNATURE is cremad.LFS_SIGNATURE is files.LFS_SIGNATURE
    assert demo.RAVDESS_STATEMENTS is RAVDESS_STATEMENTS
    assert audio.SAMPLE_RATE == demo.SAMPLE_RATE == files.SAMPLE_RATE == 16_000
    assert inference.MIN_SAMPLES is audio.MIN_SAMPLES == 400


def test_paths_relative_to_a_linked_corpus_folder_are_the_plain_ones(tmp_path):
    # data -> /mnt/corpora style: the loaders resolve clip paths, the user's data_dir is the link.
    real = tmp_path / "disk" / "demo"
    (real / "Actor_01").mkdir(parents=True)
    clip = real / "Actor_01" / "a.wav"
    clip.write_bytes(b"")
    (tmp_path / "data").symlink_to(tmp_path / "disk")
    linked = tmp_path / "data" / "demo"
    assert corpus_relative(clip, linked) == corpus_relative(linked / "Actor_01" / "a.wav", linked) == "Actor_01/a.wav"
    assert corpus_relative(clip, real) == "Actor_01/a.wav"

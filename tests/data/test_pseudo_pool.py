"""The pseudo-label pool never holds labeled or evaluation-speaker audio, and its bad files are scanned out."""

import os
import shutil

import pytest

from ser_hf.config import parse_data_config
from ser_hf.data.prepare import prepare_splits, resolve_data_args
from ser_hf.data.pseudo_pool import check_pool_isolation, pool_rows, scan_pool, speaker_from_name
from ser_hf.errors import UsageError
from tests.conftest import write_tone

# 8 actors in 4 folds of 2: fold 3 validates, fold 2 tests (conftest's ravdess_tree).
FOLDS = ["--n_folds", "4", "--fold", "3", "--test_fold", "2"]


def _data_args(tree, *extra):
    return resolve_data_args(parse_data_config(argv=["--corpus", "ravdess", "--data_dir", str(tree),
                                                     "--download", "false", *FOLDS, *extra]))


def _check(tree, pool_dir):
    data_args = _data_args(tree, "--unlabeled_dir", str(pool_dir))
    check_pool_isolation(pool_rows(data_args), prepare_splits(data_args).splits, data_args)


def _speaker_clip(tree, split, data_args=None):
    data_args = data_args or _data_args(tree)
    return prepare_splits(data_args).splits[split][0]


def test_a_validation_clip_under_another_name_is_refused(ravdess_tree, tmp_path):
    clip = _speaker_clip(ravdess_tree, "validation")
    write_tone(tmp_path / "pool" / "fresh.wav", 0.8, 300, seed=1)
    shutil.copy(clip["path"], tmp_path / "pool" / "my_recording.wav")
    with pytest.raises(UsageError, match="my_recording.wav has the same bytes as the labeled validation clip"):
        _check(ravdess_tree, tmp_path / "pool")


def test_a_file_named_as_an_evaluation_speakers_is_refused(ravdess_tree, tmp_path):
    speaker = _speaker_clip(ravdess_tree, "test")["speaker"]
    actor = int(speaker.split("_")[1])
    # New audio (repetition 02 is not in the corpus), but the name says it is a test speaker's.
    write_tone(tmp_path / "pool" / f"03-01-05-01-01-02-{actor:02d}.wav", 0.8, 333, seed=7)
    with pytest.raises(UsageError, match=f"speaker {speaker}, a test speaker"):
        _check(ravdess_tree, tmp_path / "pool")


def test_a_training_speakers_new_audio_is_allowed(ravdess_tree, tmp_path):
    speaker = _speaker_clip(ravdess_tree, "train")["speaker"]
    name = f"03-01-05-01-01-02-{int(speaker.split('_')[1]):02d}.wav"
    write_tone(tmp_path / "pool" / name, 0.8, 333, seed=7)
    write_tone(tmp_path / "pool" / "unnamed.wav", 0.8, 444, seed=8)
    data_args = _data_args(ravdess_tree, "--unlabeled_dir", str(tmp_path / "pool"))
    rows = pool_rows(data_args)
    assert {row["speaker"] for row in rows} == {speaker, None}
    check_pool_isolation(rows, prepare_splits(data_args).splits, data_args)  # no error


def test_a_link_to_a_training_clip_is_refused(ravdess_tree, tmp_path):
    # A training clip is some other fold's evaluation clip in cross-validation: refused in every fold alike.
    clip = _speaker_clip(ravdess_tree, "train")
    (tmp_path / "pool").mkdir()
    os.symlink(clip["path"], tmp_path / "pool" / "linked.wav")
    with pytest.raises(UsageError, match="is a labeled train clip of the corpus"):
        _check(ravdess_tree, tmp_path / "pool")


def test_a_pool_inside_the_corpus_folder_is_refused(ravdess_tree):
    with pytest.raises(UsageError, match="overlap: the corpus loader reads labeled clips"):
        _check(ravdess_tree, ravdess_tree / "Actor_01")


def test_a_missing_or_empty_pool_folder_is_one_clear_error(ravdess_tree, tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        pool_rows(_data_args(ravdess_tree, "--unlabeled_dir", str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no audio files"):
        pool_rows(_data_args(ravdess_tree, "--unlabeled_dir", str(tmp_path / "empty")))


def test_a_pool_fold_leaves_training_and_keeps_its_labels_apart(ravdess_tree):
    data_args = _data_args(ravdess_tree, "--pseudo_pool_fold", "1")
    splits = prepare_splits(data_args).splits
    pool = pool_rows(data_args)
    pool_speakers = {row["speaker"] for row in pool}
    assert len(pool_speakers) == 2 and len(pool) == 16
    for rows in splits.values():  # in no split: neither labeled training nor evaluation
        assert not pool_speakers & {row["speaker"] for row in rows}
    assert len(splits["train"]) == 16  # 8 actors - 2 validation - 2 test - 2 pool
    assert all("label" not in row and row["held_back_label"] for row in pool)  # nothing reads it as a label
    check_pool_isolation(pool, splits, data_args)
    assert "left out of labeled training" in prepare_splits(data_args).protocol


@pytest.mark.parametrize("extra, message", [
    (["--pseudo_pool_fold", "3"], "--pseudo_pool_fold and --fold are both 3"),
    (["--pseudo_pool_fold", "2"], "--pseudo_pool_fold and --test_fold are both 2"),
    (["--pseudo_pool_fold", "4"], "out of range"),
    (["--pseudo_pool_fold", "1", "--unlabeled_dir", "x"], "not both"),
    (["--unlabeled_dir", "x", "--pseudo_threshold", "0"], "in \\(0, 1\\]"),
    (["--unlabeled_dir", "x", "--pseudo_rounds", "0"], "at least 1"),
])
def test_contradictory_pseudo_label_settings_are_refused(ravdess_tree, extra, message):
    with pytest.raises(UsageError, match=message):
        _data_args(ravdess_tree, *extra)


def test_a_broken_pool_file_is_reported_and_left_out(ravdess_tree, tmp_path):
    write_tone(tmp_path / "pool" / "good.wav", 0.8, 300, seed=1)
    (tmp_path / "pool" / "broken.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    data_args = _data_args(ravdess_tree, "--unlabeled_dir", str(tmp_path / "pool"), "--scan_workers", "1")
    kept, report = scan_pool(pool_rows(data_args), data_args, tmp_path / "out")
    assert [os.path.basename(row["path"]) for row in kept] == ["good.wav"] and kept[0]["duration"] > 0.7
    assert report["n_excluded"] == 1 and report["files"][0]["path"].endswith("broken.wav")
    assert report["by_split"] == {"unlabeled": {"unreadable": 1}}


def test_speaker_names_follow_each_corpus_scheme():
    assert speaker_from_name("x/03-01-05-01-01-02-07.wav", "demo") == "Actor_07"
    assert speaker_from_name("1001_DFA_ANG_XX.wav", "cremad") == "1001"
    assert speaker_from_name("03-01-09-01-01-02-07.wav", "ravdess") is None  # impossible emotion code
    assert speaker_from_name("03-01-05-01-01-02-07.wav", "manifest") is None  # no naming scheme

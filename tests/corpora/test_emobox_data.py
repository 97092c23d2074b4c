"""EmoBox's own files (`--corpus emobox`): fold files, label map, stm speakers, segments, and the split they give."""

import json
import logging

import pytest
import soundfile as sf

from ser_hf.config import DataArguments
from ser_hf.corpora.emobox_data import SEGMENT_DIRNAME, fold_numbers, label_names, load_emobox, load_emobox_fold
from ser_hf.data.prepare import prepare_splits, resolve_data_args
from ser_hf.errors import UsageError
from tests.conftest import make_emobox_tree


@pytest.fixture
def emobox(tmp_path):
    return make_emobox_tree(tmp_path / "EmoBox")


def _args(root, data, **kwargs):
    return DataArguments(corpus="emobox", data_dir=str(root), emobox_dir=str(data), **kwargs)


def test_a_fold_is_its_files_with_labels_from_the_map_and_speakers_from_the_stm(emobox):
    root, data, utterances = emobox
    assert fold_numbers(data) == [1, 2]
    assert label_names(data) == ["angry", "neutral", "sad"]
    fold = load_emobox_fold(data, root, 0)
    assert set(fold) == {"train", "test"}  # no valid file: no validation split from EmoBox
    assert {row["speaker"] for row in fold["test"]} == {"sp1", "sp2", "sp3"}
    assert {row["speaker"] for row in fold["train"]} == {"sp4", "sp5", "sp6"}
    by_key = {row["key"]: row for rows in fold.values() for row in rows}
    assert by_key["sp1_neutral_0"]["label"] == "neutral"  # "neutral" in the jsonl, "Neutral" in label_map.json
    assert len(by_key) == len(utterances)


def test_a_segment_line_is_cut_once_into_its_own_wav(emobox):
    root, data, _ = emobox
    row = next(r for r in load_emobox_fold(data, root, 0)["train"] if r["key"] == "recording_seg")
    info = sf.info(row["path"])
    assert SEGMENT_DIRNAME in row["path"] and info.frames == info.samplerate  # 0.5 s .. 1.5 s of the recording
    written = (root / SEGMENT_DIRNAME / "recording_seg.wav").stat().st_mtime_ns
    load_emobox_fold(data, root, 1)
    assert (root / SEGMENT_DIRNAME / "recording_seg.wav").stat().st_mtime_ns == written


def test_every_utterance_once_for_the_scan(emobox):
    root, data, utterances = emobox
    rows = load_emobox(data, root)
    assert sorted(row["key"] for row in rows) == sorted(utterances)


def test_bad_files_are_named(emobox, tmp_path):
    root, data, _ = emobox
    test_file = data / "fold_2" / "mycorpus_test_fold_2.jsonl"
    lines = test_file.read_text().splitlines()
    record = json.loads(lines[0])
    test_file.write_text("\n".join([json.dumps({**record, "emo": "fear"}), *lines[1:]]) + "\n")
    with pytest.raises(UsageError, match=r"mycorpus_test_fold_2.jsonl: emotion codes \['fear'\] are not in label_map"):
        load_emobox_fold(data, root, 1)
    test_file.write_text("\n".join(["{not json", *lines[1:]]) + "\n")
    with pytest.raises(UsageError, match="mycorpus_test_fold_2.jsonl line 1: not an EmoBox line"):
        load_emobox_fold(data, root, 1)
    test_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(FileNotFoundError, match="wav files are not under --data_dir .* holds EmoBox's downloads/"):
        load_emobox_fold(data, tmp_path, 1)  # --data_dir not the EmoBox root
    with pytest.raises(FileNotFoundError, match="no fold_<n> folders; give EmoBox's data/<dataset> folder"):
        load_emobox_fold(root / "data", root, 0)  # data/ instead of data/<dataset>
    with pytest.raises(UsageError, match="--fold 2: EmoBox has 2 folds"):
        load_emobox_fold(data, root, 2)


def test_the_run_trains_on_the_train_file_selects_on_train_speakers_and_tests_on_the_test_file(emobox):
    root, data, _ = emobox
    prepared = prepare_splits(_args(root, data, fold=1))
    speakers = {name: {row["speaker"] for row in rows} for name, rows in prepared.splits.items()}
    assert speakers["test"] == {"sp4", "sp5", "sp6"}
    assert len(speakers["validation"]) == 1 and speakers["validation"] | speakers["train"] == {"sp1", "sp2", "sp3"}
    assert prepared.speaker_independent and "EmoBox fold_2" in prepared.protocol
    assert prepared.label_names == ["angry", "neutral", "sad"]


def test_a_fold_with_a_speaker_on_both_sides_runs_but_says_so(tmp_path, caplog):
    root, data, _ = make_emobox_tree(tmp_path / "EmoBox", overlap=True)
    with caplog.at_level(logging.WARNING):
        prepared = prepare_splits(_args(root, data, fold=0))
    assert not prepared.speaker_independent and "NOT speaker-independent" in prepared.protocol
    assert "EmoBox fold_1 is NOT speaker-independent" in caplog.text


def test_the_fold_count_is_emobox_s_and_our_own_fold_settings_are_refused(emobox):
    root, data, _ = emobox
    assert resolve_data_args(_args(root, data)).n_folds == 2
    with pytest.raises(UsageError, match="drop --fold_scheme, --test_fold"):
        resolve_data_args(_args(root, data, test_fold=1))
    with pytest.raises(UsageError, match="--fold 3: EmoBox has 2 folds"):
        resolve_data_args(_args(root, data, fold=3))
    with pytest.raises(UsageError, match="needs --emobox_dir"):
        resolve_data_args(DataArguments(corpus="emobox", data_dir=str(root)))


def test_a_valid_file_is_the_validation_split(emobox):
    root, data, _ = emobox
    fold = data / "fold_1"
    train = (fold / "mycorpus_train_fold_1.jsonl").read_text().splitlines()
    sp4 = [line for line in train if json.loads(line)["key"].startswith("sp4_")]
    (fold / "mycorpus_train_fold_1.jsonl").write_text("\n".join(line for line in train if line not in sp4) + "\n")
    (fold / "mycorpus_valid_fold_1.jsonl").write_text("\n".join(sp4) + "\n")
    prepared = prepare_splits(_args(root, data, fold=0))
    assert {row["speaker"] for row in prepared.splits["validation"]} == {"sp4"}
    assert {row["speaker"] for row in prepared.splits["train"]} == {"sp5", "sp6"}
    assert "its valid file selects the checkpoint" in prepared.protocol

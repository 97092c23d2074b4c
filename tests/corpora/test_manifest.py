"""Bring-your-own corpus loaders: manifests, audiofolder, user splits, stratified fallback, local Hub path."""

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.corpora.manifest import (
    labels_from_rows,
    load_audiofolder,
    load_hub_dataset,
    load_manifest,
    load_user_splits,
)
from ser_hf.data.splits import stratified_split
from ser_hf.errors import UsageError

LOGGER = "ser_hf.corpora.manifest"


def _wav(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).standard_normal(1600).astype(np.float32) * 0.1  # 0.1 s at 16 kHz
    sf.write(path, noise, 16_000)
    return path


def _csv(path: Path, header, rows, sep=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([sep.join(header)] + [sep.join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture
def clips(tmp_path):
    """Four clips in tmp_path/audio, two speakers, two labels."""
    for i in range(4):
        _wav(tmp_path / "audio" / f"c{i}.wav", seed=i)
    return [("audio/c0.wav", "happy", "s1"), ("audio/c1.wav", "sad", "s1"), ("audio/c2.wav", "happy", "s2"),
            ("audio/c3.wav", "sad", "s2")]


# --- load_manifest ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json"])
def test_manifest_formats_resolve_relative_paths(tmp_path, clips, fmt):
    path = tmp_path / f"meta.{fmt}"
    if fmt in ("csv", "tsv"):
        _csv(path, ["path", "label", "speaker", "gender"], [(*c, "f") for c in clips], sep="," if fmt == "csv" else "\t")
    else:
        path.write_text("\n".join(json.dumps({"path": p, "label": l, "speaker": s, "gender": "f"}) for p, l, s in clips))
    rows = load_manifest(path)
    assert [r["label"] for r in rows] == ["happy", "sad", "happy", "sad"]
    assert rows[0]["path"] == str((tmp_path / "audio" / "c0.wav").resolve())
    assert rows[3]["speaker"] == "s2" and rows[0]["gender"] == "f"  # extra columns kept


def test_manifest_in_another_folder_and_custom_columns(tmp_path, clips):
    manifest = _csv(tmp_path / "lists" / "m.csv", ["file", "emotion"], [(f"../{p}", l) for p, l, _ in clips])
    rows = load_manifest(manifest, path_column="file", label_column="emotion")
    assert Path(rows[1]["path"]) == (tmp_path / "audio" / "c1.wav").resolve()
    assert "speaker" not in rows[0] and "file" not in rows[0] and rows[1]["label"] == "sad"


def test_missing_column_names_file_column_and_columns_present(tmp_path, clips):
    manifest = _csv(tmp_path / "m.csv", ["path", "emotion"], [(p, l) for p, l, _ in clips])
    with pytest.raises(UsageError) as err:
        load_manifest(manifest)
    message = str(err.value)
    assert str(manifest) in message and "'label'" in message and "'path', 'emotion'" in message
    # The fix is a flag naming the user's own column, not renaming their file.
    assert "--label_column COLUMN" in message and "--speaker_column COLUMN" in message
    assert "--path_column" not in message  # 'path' is there


def test_missing_column_in_audiofolder_metadata_names_its_columns(tmp_path, clips):
    _csv(tmp_path / "metadata.csv", ["path", "label"], [(p, l) for p, l, _ in clips])
    with pytest.raises(UsageError) as err:
        load_audiofolder(tmp_path)
    message = str(err.value)
    # audiofolder's column names are Hugging Face's convention, which no flag changes: rename is the fix.
    assert "no column 'file_name'" in message and "path column to 'file_name'" in message
    assert "--path_column" not in message


def test_missing_audio_files_reported_all_at_once(tmp_path, clips):
    listed = [(p, l) for p, l, _ in clips] + [(f"audio/gone{i}.wav", "sad") for i in range(12)]
    manifest = _csv(tmp_path / "m.csv", ["path", "label"], listed)
    with pytest.raises(FileNotFoundError) as err:
        load_manifest(manifest)
    message = str(err.value)
    assert message.startswith("12 of the 16 audio files")
    assert "gone0.wav" in message and "gone9.wav" in message and "gone10.wav" not in message
    assert "and 2 more" in message


def test_empty_speaker_values_are_none(tmp_path, clips):
    manifest = _csv(tmp_path / "m.csv", ["path", "label", "speaker"], [(p, l, "") for p, l, _ in clips])
    assert {r["speaker"] for r in load_manifest(manifest)} == {None}


# --- load_audiofolder ------------------------------------------------------------------------------


def test_audiofolder_with_metadata_csv(tmp_path, clips):
    _csv(tmp_path / "metadata.csv", ["file_name", "label", "speaker"], clips)
    rows = load_audiofolder(tmp_path)
    assert [(Path(r["path"]).name, r["label"], r["speaker"]) for r in rows][:2] == [("c0.wav", "happy", "s1"), ("c1.wav", "sad", "s1")]


def test_audiofolder_without_metadata_labels_by_folder(tmp_path, caplog):
    for label in ("angry", "calm"):
        for i in range(2):
            _wav(tmp_path / "data" / label / f"{i}.wav")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        rows = load_audiofolder(tmp_path / "data")
    assert Counter(r["label"] for r in rows) == {"angry": 2, "calm": 2}
    assert "parent folder names" in caplog.text


def test_audiofolder_refuses_a_ravdess_tree(tmp_path):
    _wav(tmp_path / "r" / "Actor_01" / "03-01-05-02-01-02-01.wav")
    with pytest.raises(ValueError, match="--corpus ravdess"):
        load_audiofolder(tmp_path / "r")


# --- load_user_splits ------------------------------------------------------------------------------


def _splits(tmp_path, clips, valid_rows, header=("path", "label", "speaker")):
    train = _csv(tmp_path / "train.csv", header, [c[: len(header)] for c in clips[:2]])
    valid = _csv(tmp_path / "valid.csv", header, [r[: len(header)] for r in valid_rows])
    return train, valid


def test_user_splits_labels_from_train_and_unknown_eval_label_named(tmp_path, clips):
    train, valid = _splits(tmp_path, clips, [clips[2], ("audio/c3.wav", "surprised", "s2")])
    with pytest.raises(ValueError) as err:
        load_user_splits(train=train, validation=valid)
    assert "'surprised'" in str(err.value) and "validation" in str(err.value)


def test_user_splits_speaker_overlap_warns_with_names(tmp_path, clips, caplog):
    train, valid = _splits(tmp_path, clips, [("audio/c2.wav", "happy", "s1"), clips[3]])
    test = _csv(tmp_path / "test.csv", ["path", "label", "speaker"], [clips[3]])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        splits = load_user_splits(train=train, validation=valid, test=test)
    assert list(splits) == ["train", "validation", "test"] and len(splits["validation"]) == 2
    assert labels_from_rows(splits["train"]) == ["happy", "sad"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("train and validation" in m and "s1" in m for m in messages)
    assert any("validation and test" in m and "s2" in m for m in messages)
    assert not any("train and test" in m for m in messages)


def test_user_splits_without_speakers_warn_loudly(tmp_path, clips, caplog):
    train, valid = _splits(tmp_path, clips, clips[2:], header=("path", "label"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_user_splits(train=train, validation=valid)
    assert any(r.levelno == logging.WARNING and "leak speakers" in r.getMessage() for r in caplog.records)


# --- stratified_split / labels_from_rows -----------------------------------------------------------


def test_stratified_split_keeps_class_proportions(caplog):
    rows = [{"path": f"{i}.wav", "label": label} for label, n in (("a", 60), ("b", 30), ("c", 10)) for i in range(n)]
    with caplog.at_level(logging.WARNING, logger="ser_hf.data.splits"):
        splits = stratified_split(rows, eval_fraction=0.2, seed=3)
    assert Counter(r["label"] for r in splits["validation"]) == {"a": 12, "b": 6, "c": 2}
    assert Counter(r["label"] for r in splits["train"]) == {"a": 48, "b": 24, "c": 8}
    assert "leak speakers" in caplog.text
    assert stratified_split(rows, seed=3) == splits  # same seed, same split
    with pytest.raises(ValueError, match="fewer than 2"):
        stratified_split(rows + [{"path": "x.wav", "label": "lonely"}])


def test_labels_from_rows_sorted_unique():
    assert labels_from_rows([{"label": "sad"}, {"label": "angry"}, {"label": "sad"}]) == ["angry", "sad"]


# --- load_hub_dataset (offline, local folders) -----------------------------------------------------


def test_load_hub_dataset_on_local_audiofolder(tmp_path, caplog):
    for label in ("angry", "happy"):
        for i in range(2):
            _wav(tmp_path / "af" / label / f"{label}{i}.wav", seed=i)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        dataset, labels = load_hub_dataset(
            "audiofolder", split="train", data_dir=str(tmp_path / "af"), cache_dir=str(tmp_path / "cache")
        )
    assert labels == ["angry", "happy"] and dataset.num_rows == 4
    assert "leak speakers" in caplog.text
    with pytest.raises(ValueError, match="no column 'speaker'"):
        load_hub_dataset(
            "audiofolder", split="train", data_dir=str(tmp_path / "af"), cache_dir=str(tmp_path / "cache"),
            speaker_column="speaker",
        )


def test_load_hub_dataset_on_saved_dataset(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"audio": ["a.wav", "b.wav", "c.wav"], "label": ["sad", "angry", "sad"], "spk": ["1", "2", "1"]}
                      ).save_to_disk(str(tmp_path / "saved"))
    dataset, labels = load_hub_dataset(str(tmp_path / "saved"), speaker_column="spk")
    assert labels == ["angry", "sad"] and dataset.num_rows == 3


def test_the_load_line_counts_in_the_right_number(tmp_path, caplog):
    manifest = _csv(tmp_path / "m.csv", ["path", "label", "speaker"], [(_wav(tmp_path / "a.wav"), "calm", "s1")])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        load_manifest(manifest)
    assert "Loaded 1 clip, 1 label, 1 speaker from" in caplog.text

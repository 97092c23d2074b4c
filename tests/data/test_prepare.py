"""ser_hf.data.prepare: from a corpus folder to scanned, speaker-independent splits, the decoded-audio cache and the
`datasets` the Trainer reads, on small generated RAVDESS-layout trees (4 actors, one broken file)."""

import json
import os

import numpy as np
import pytest
from datasets import DatasetDict
from transformers import Wav2Vec2FeatureExtractor

from ser_hf.config import DataArguments
from ser_hf.data import prepare
from ser_hf.data.audio import SAMPLE_RATE, decode_16k_mono
from ser_hf.data.audio_cache import AUDIO_CACHE_DIRNAME
from ser_hf.data.prepare import (
    PreparedData,
    cache_dir_for,
    class_counts,
    class_counts_markdown,
    prepare_corpus,
    resolve_data_args,
    to_dataset,
)
from ser_hf.data.splits import speaker_folds
from ser_hf.errors import UsageError
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from tests.conftest import make_ravdess_tree, touch

ACTORS = [f"Actor_{a:02d}" for a in range(1, 5)]
# Angry at strong intensity: a valid RAVDESS name no generated clip has, holding text instead of audio.
BROKEN = "Actor_02/03-01-05-02-01-01-02.wav"


def _tree(root):
    """4 actors x 8 emotions of generated audio (0.4-1.2 s), plus BROKEN."""
    make_ravdess_tree(root, actors=4)
    touch(root / BROKEN, b"this is text, not audio\n")
    return root


def _data_args(tree, **fields):
    return DataArguments(**{"corpus": "ravdess", "data_dir": str(tree), "n_folds": 2, "fold": 1, "scan_workers": 1,
                            "download": False, **fields})


def _paths(rows):
    return {row["path"] for row in rows}


def _speakers(rows):
    return {row["speaker"] for row in rows}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("prepare_corpus"))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    """prepare_corpus on `corpus`, decoding into the audio cache: (PreparedData, report_dir)."""
    report_dir = tmp_path_factory.mktemp("prepare_report")
    return prepare_corpus(_data_args(corpus), report_dir), report_dir


def test_splits_hold_exactly_the_clips_the_scan_kept(corpus, prepared):
    data, report_dir = prepared
    assert isinstance(data, PreparedData)
    assert set(data.splits) == {"train", "validation"}
    kept = [row for rows in data.splits.values() for row in rows]
    good = {str(path.resolve()) for path in corpus.rglob("*.wav")} - {str((corpus / BROKEN).resolve())}
    assert len(kept) == len(good) == 32 and _paths(kept) == good  # every clip once, the broken one in no split
    assert all(row["duration"] > 0 for row in kept)  # the scan's measured duration rides along
    assert data.label_names == list(RAVDESS_EMOTIONS)

    report = data.scan_report
    assert report["n_excluded"] == 1 and report["by_reason"] == {"unreadable": 1}
    assert [(f["path"], f["reason"], f["label"]) for f in report["files"]] == [(BROKEN, "unreadable", "angry")]
    written = json.loads((report_dir / "data_report.json").read_text())
    assert [(f["path"], f["reason"]) for f in written["files"]] == [(BROKEN, "unreadable")]
    assert written["n_excluded"] == 1


def test_validation_is_the_folds_speakers_and_no_speaker_is_in_two_splits(prepared):
    data, _ = prepared
    genders = {f"Actor_{a:02d}": "male" if a % 2 else "female" for a in range(1, 5)}
    fold = set(speaker_folds(genders, n_folds=2, seed=None)[1])
    assert len(fold) == 2 and _speakers(data.splits["validation"]) == fold
    assert _speakers(data.splits["train"]) == set(ACTORS) - fold
    assert data.speaker_independent
    assert data.split_name == f"validation (fold 1: {', '.join(sorted(fold))})"
    assert "Speaker-independent: 2 folds of speakers, fold 1 held out for validation" in data.protocol


def test_decode_fills_the_cache_with_the_decoded_clips(corpus, prepared):
    data, report_dir = prepared
    paths = sorted(_paths(row for rows in data.splits.values() for row in rows))
    assert len(list((corpus / AUDIO_CACHE_DIRNAME).glob("*.npy"))) == len(paths) == 32  # one array per kept clip
    assert not (report_dir / AUDIO_CACHE_DIRNAME).exists()  # the corpus folder is writable: the cache is there
    assert data.load_audio is not decode_16k_mono
    for path in paths[:3]:
        cached, decoded = data.load_audio(path), decode_16k_mono(path)
        assert cached.dtype == np.float32 and np.array_equal(cached, decoded)


def test_decode_false_reads_files_directly_and_writes_no_audio_cache(tmp_path):
    tree = _tree(tmp_path / "corpus")
    data = prepare_corpus(_data_args(tree), tmp_path / "report", decode=False)
    assert data.load_audio is decode_16k_mono
    assert not (tree / AUDIO_CACHE_DIRNAME).exists() and not (tmp_path / "report" / AUDIO_CACHE_DIRNAME).exists()
    assert (tree / ".ser_hf_scan_cache.json").is_file()  # the scan still ran, and cached its results
    assert data.scan_report["n_excluded"] == 1


def test_audio_cache_false_decodes_every_time(tmp_path):
    tree = _tree(tmp_path / "corpus")
    data = prepare_corpus(_data_args(tree, audio_cache=False), tmp_path / "report")
    assert data.load_audio is decode_16k_mono and not (tree / AUDIO_CACHE_DIRNAME).exists()


def test_keep_keeps_only_the_named_splits(corpus, prepared, tmp_path):
    data, _ = prepared
    only = prepare_corpus(_data_args(corpus), tmp_path, keep=["validation"], decode=False)
    assert list(only.splits) == ["validation"]
    assert only.splits["validation"] == data.splits["validation"]
    assert only.split_names == data.split_names and only.label_names == data.label_names


def test_a_given_corpus_is_used_and_not_loaded_again(corpus, tmp_path, monkeypatch):
    rows, label_names = prepare.load_corpus(_data_args(corpus))
    given = [row for row in rows if row["label"] in ("happy", "sad")]  # only these rows, which loading would not give

    def no_load(data_args):
        raise AssertionError("prepare_corpus loaded the corpus although it was given")

    monkeypatch.setattr(prepare, "load_corpus", no_load)
    data = prepare_corpus(_data_args(corpus), tmp_path, corpus=(given, label_names), decode=False)
    kept = [row for rows in data.splits.values() for row in rows]
    assert _paths(kept) == _paths(given) and len(kept) == 8
    assert {row["label"] for row in kept} == {"happy", "sad"} and data.label_names == label_names
    assert data.scan_report["n_excluded"] == 0  # the broken (angry) file was not among the given rows


def test_is_main_false_writes_no_report(corpus, tmp_path):
    data = prepare_corpus(_data_args(corpus), tmp_path / "worker", is_main=False, decode=False)
    assert data.scan_report["n_excluded"] == 1 and not (tmp_path / "worker" / "data_report.json").exists()


def test_datasets_crop_training_clips_and_keep_evaluation_clips_whole(prepared):
    data, _ = prepared
    _, label2id = label_maps(data.label_names)
    args = _data_args(".", max_duration_seconds=0.5)
    datasets = data.datasets(label2id, Wav2Vec2FeatureExtractor(), args)
    assert isinstance(datasets, DatasetDict) and set(datasets) == {"train", "validation"}
    limit = int(0.5 * SAMPLE_RATE)
    cropped = whole = 0
    for split in ("train", "validation"):
        rows = data.splits[split]
        assert len(datasets[split]) == len(rows)
        for i, row in enumerate(rows):
            item = datasets[split][i]
            full = len(decode_16k_mono(row["path"]))
            assert item["path"] == row["path"] and item["labels"] == label2id[row["label"]]
            if split == "train":
                assert len(item["input_values"]) == min(full, limit)
                cropped += full > limit
            else:
                assert len(item["input_values"]) == full
                whole += full > limit
    assert cropped and whole  # some clips were longer than the crop, in each split


@pytest.mark.parametrize("fields,data_dir", [
    ({"corpus": "ravdess"}, "data/ravdess"),
    ({"corpus": "demo"}, "data/demo"),
    ({"corpus": "hub", "dataset_name": "someone/corpus"}, os.path.join("data/hub", "someone__corpus")),
])
def test_resolve_fills_the_corpus_default_data_dir(fields, data_dir):
    resolved = resolve_data_args(DataArguments(**fields))
    assert resolved.data_dir == data_dir
    assert resolved.labels == ("8" if fields["corpus"] in ("ravdess", "demo") else None)


def test_resolve_keeps_a_given_data_dir_and_takes_a_manifest_folder(tmp_path):
    assert resolve_data_args(DataArguments(corpus="ravdess", data_dir=str(tmp_path))).data_dir == str(tmp_path)
    assert resolve_data_args(DataArguments(corpus="ravdess", labels="15")).labels == "15"
    manifest = touch(tmp_path / "lists" / "corpus.csv", b"path,label\n")
    resolved = resolve_data_args(DataArguments(corpus="manifest", manifest=str(manifest)))
    assert resolved.data_dir == str(tmp_path / "lists") and resolved.labels is None


def test_resolve_refuses_labels_where_the_corpus_has_one_label_set(tmp_path):
    with pytest.raises(UsageError, match=r"--labels chooses among a corpus's label sets; .* has one \(drop --labels\)"):
        resolve_data_args(DataArguments(corpus="audiofolder", data_dir=str(tmp_path), labels="8"))
    with pytest.raises(UsageError, match="21, 6"):  # a set the corpus does not have
        resolve_data_args(DataArguments(corpus="cremad", data_dir=str(tmp_path), labels="7"))
    with pytest.raises(UsageError, match="--corpus cremad needs --data_dir"):
        resolve_data_args(DataArguments(corpus="cremad"))


def test_class_counts_keep_absent_classes_at_zero():
    splits = {"train": [{"label": "sad"}, {"label": "angry"}, {"label": "sad"}], "validation": [{"label": "angry"}]}
    labels = ["neutral", "sad", "angry"]
    counts = class_counts(splits, labels)
    assert counts == {"train": {"neutral": 0, "sad": 2, "angry": 1}, "validation": {"neutral": 0, "sad": 0, "angry": 1}}
    assert [list(c) for c in counts.values()] == [labels, labels]  # label order, zeros included
    assert class_counts_markdown(splits, labels).splitlines() == [
        "| class | train | validation |",
        "|---|---|---|",
        "| neutral | 0 | 0 |",
        "| sad | 2 | 0 |",
        "| angry | 1 | 1 |",
        "| **total** | 3 | 1 |",
    ]


def _read_only(path, monkeypatch):
    """Make `path` read-only for this process: chmod, and where that does not bind (root), os.access says so."""
    path.chmod(0o555)
    if os.access(path, os.W_OK):  # root writes anywhere: the check the code makes is what must say no
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if (
            mode & os.W_OK and os.path.realpath(p) == os.path.realpath(path)) else real(p, mode, *a, **k))
    assert not os.access(path, os.W_OK)


def test_caches_go_to_the_report_dir_when_the_corpus_folder_is_read_only(tmp_path, monkeypatch):
    tree = _tree(tmp_path / "corpus")
    report_dir = tmp_path / "report"
    assert cache_dir_for(_data_args(tree), report_dir) == tree
    _read_only(tree, monkeypatch)
    try:
        assert cache_dir_for(_data_args(tree), report_dir) == report_dir
        data = prepare_corpus(_data_args(tree), report_dir)
        assert len(list((report_dir / AUDIO_CACHE_DIRNAME).glob("*.npy"))) == 32
        assert (report_dir / ".ser_hf_scan_cache.json").is_file() and (report_dir / "data_report.json").is_file()
        assert not (tree / AUDIO_CACHE_DIRNAME).exists() and not (tree / ".ser_hf_scan_cache.json").exists()
        path = data.splits["validation"][0]["path"]
        assert np.array_equal(data.load_audio(path), decode_16k_mono(path))
    finally:
        tree.chmod(0o755)


def test_cache_dir_holds_each_corpus_caches_outside_the_read_only_corpus(tmp_path, monkeypatch):
    tree, other = _tree(tmp_path / "corpus"), _tree(tmp_path / "elsewhere" / "corpus")
    shared = tmp_path / "shared_cache"
    _read_only(tree, monkeypatch)
    try:
        data = prepare_corpus(_data_args(tree, cache_dir=str(shared)), tmp_path / "run1")
        home = cache_dir_for(_data_args(tree, cache_dir=str(shared)), tmp_path / "run1")
        assert home.parent == shared and home.name.startswith("corpus-")
        assert len(list((home / AUDIO_CACHE_DIRNAME).glob("*.npy"))) == 32 and (home / ".ser_hf_scan_cache.json").is_file()
        assert not (tmp_path / "run1" / AUDIO_CACHE_DIRNAME).exists()  # not one copy per output dir
        path = data.splits["validation"][0]["path"]
        assert np.array_equal(data.load_audio(path), decode_16k_mono(path))
    finally:
        tree.chmod(0o755)
    # Two corpora folders of the same name get their own subfolders; the environment variable means the same.
    monkeypatch.setenv("SER_HF_CACHE", str(shared))
    assert cache_dir_for(_data_args(other), tmp_path / "run2") not in (home, other)
    assert cache_dir_for(_data_args(other), tmp_path / "run2").parent == shared
    assert cache_dir_for(_data_args(tree), tmp_path / "run3") == home


def test_to_dataset_refuses_a_label_outside_the_label_set(corpus):
    rows = [{"path": str(corpus / "a.wav"), "label": "sad", "duration": 1.0},
            {"path": str(corpus / "b.wav"), "label": "bored", "duration": 0.5}]
    with pytest.raises(ValueError, match=r"labels \['bored'\] are not in the label set \['sad', 'angry'\]"):
        to_dataset(rows, {"sad": 0, "angry": 1})
    dataset = to_dataset(rows, {"sad": 0, "bored": 1}, limit=1)
    assert dataset["label"] == [0] and dataset["length"] == [SAMPLE_RATE] and dataset["speaker"] == [""]

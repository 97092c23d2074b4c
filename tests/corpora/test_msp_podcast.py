"""MSP-Podcast on a generated release: both label-file layouts, the release's own splits, O / X and Unknown speakers."""

import pytest

from ser_hf.config import DataArguments
from ser_hf.corpora.msp_podcast import MSP_PODCAST_LABELS, load_msp_podcast
from ser_hf.data.prepare import prepare_splits, resolve_data_args
from ser_hf.errors import UsageError
from tests.conftest import make_msp_podcast_tree


@pytest.mark.parametrize("old_layout", [False, True], ids=["labels_consensus.csv", "labels_concensus.json"])
def test_both_release_layouts_give_the_same_rows(tmp_path, old_layout):
    kept = make_msp_podcast_tree(tmp_path, old_layout=old_layout)
    rows = load_msp_podcast(tmp_path)
    assert sorted(r["path"].rsplit("/", 1)[1] for r in rows) == sorted(n for names in kept.values() for n in names)
    assert {r["label"] for r in rows} == set(MSP_PODCAST_LABELS)
    assert rows.excluded == {"O (other)": 6, "X (no agreement)": 6}  # one each per speaker, 6 speakers
    happy = next(r for r in rows if r["path"].endswith("MSP-PODCAST_0001_0001.wav"))
    assert (happy["label"], happy["speaker"], happy["split"], happy["arousal"]) == ("happy", "msp1", "train", 2.0)


def test_the_dimensional_task_keeps_o_and_x_segments(tmp_path):
    kept = make_msp_podcast_tree(tmp_path)
    prepared = prepare_splits(DataArguments(corpus="msp_podcast", data_dir=str(tmp_path)), task="dimensional")
    assert sum(len(rows) for rows in prepared.splits.values()) == sum(len(names) for names in kept.values()) + 12
    other = next(r for r in prepared.splits["test"] if r["path"].endswith("MSP-PODCAST_0005_0008.wav"))
    assert other["label"] == "O" and other["dimensions"] == [(2 - 1) / 6, (3.5 - 1) / 6, (4 - 1) / 6]


def test_the_releases_splits_are_the_runs_splits(tmp_path):
    kept = make_msp_podcast_tree(tmp_path)
    prepared = prepare_splits(DataArguments(corpus="msp_podcast", data_dir=str(tmp_path)))
    assert list(prepared.splits) == ["train", "validation", "test", "test2"]
    for ours, release in (("train", "Train"), ("validation", "Development"), ("test", "Test1"), ("test2", "Test2")):
        assert sorted(r["path"].rsplit("/", 1)[1] for r in prepared.splits[ours]) == sorted(kept[release])
    assert prepared.split_names["test"] == "test (the release's Test1)"
    # The Unknown speaker is no speaker: a run with such clips is never called speaker-independent.
    unknown = next(r for r in prepared.splits["train"] if r["path"].endswith("9999_0001.wav"))
    assert unknown["speaker"] is None
    assert not prepared.speaker_independent and "1 clips have no known speaker" in prepared.protocol


def test_fold_settings_do_not_apply_to_the_releases_splits(tmp_path):
    for field, value in (("test_fold", 2), ("fold_scheme", "emobox"), ("held_out_split", "test")):
        with pytest.raises(UsageError, match="release's own splits"):
            resolve_data_args(DataArguments(corpus="msp_podcast", data_dir=str(tmp_path), **{field: value}))


def test_a_release_without_its_files_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels_consensus.csv"):
        load_msp_podcast(tmp_path)
    make_msp_podcast_tree(tmp_path)
    (tmp_path / "Audios" / "MSP-PODCAST_0001_0000.wav").unlink()
    with pytest.raises(FileNotFoundError, match="1 files listed in labels_consensus.csv are not in"):
        load_msp_podcast(tmp_path)


def test_an_unknown_split_name_is_refused(tmp_path):
    make_msp_podcast_tree(tmp_path)
    labels = tmp_path / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text().replace("Test2", "Holdout"))
    with pytest.raises(UsageError, match="Split_Set 'Holdout'"):
        load_msp_podcast(tmp_path)

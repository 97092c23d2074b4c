"""IEMOCAP on a generated release with the real layout and its quirks: labels, speakers, sessions, protocol."""

import dataclasses
import json

import pytest

from ser_hf.config import DataArguments
from ser_hf.corpora.emobox import emobox_folds
from ser_hf.corpora.iemocap import find_release, load_iemocap, read_evaluation, speaker_of
from ser_hf.data.prepare import prepare_corpus, prepare_splits, resolve_data_args
from ser_hf.errors import UsageError
from tests.conftest import make_iemocap_tree


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap")
    make_iemocap_tree(root)
    return root


def _args(root, **overrides):
    return DataArguments(corpus="iemocap", data_dir=str(root), n_folds=5, scan_workers=1, **overrides)


@pytest.mark.parametrize("utterance, speaker", [("Ses01F_impro01_M000", "Ses01M"), ("Ses01F_impro01_F012", "Ses01F"),
                                                ("Ses05M_script01_1b_F003", "Ses05F"), ("Ses03M_script02_2_M041", "Ses03M")])
def test_the_speaker_is_who_talks_not_the_dialogs_prefix(utterance, speaker):
    assert speaker_of(utterance) == speaker


def test_a_name_not_of_iemocaps_form_is_refused():
    with pytest.raises(UsageError, match="not an IEMOCAP utterance name"):
        speaker_of("Ses09F_impro01_F000")


def test_the_release_is_found_in_the_folder_or_inside_it(release, tmp_path):
    assert find_release(release).name == "IEMOCAP_full_release"
    assert find_release(release / "IEMOCAP_full_release") == release / "IEMOCAP_full_release"
    with pytest.raises(FileNotFoundError, match="sail.usc.edu"):
        find_release(tmp_path)


def test_evaluation_lines_give_labels_and_ratings_and_nothing_else(release):
    path = release / "IEMOCAP_full_release" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    items = read_evaluation(path)
    assert len(items) == 2 * 7  # two actors x (neu ang sad hap exc fru xxx); annotator lines are no utterances
    first = items[0]
    assert (first["utterance"], first["code"], first["valence"], first["arousal"]) == ("Ses01F_impro01_F000", "neu",
                                                                                        2.5, 1.5)


def test_four_classes_with_excited_as_happy_and_the_rest_counted(release):
    rows = load_iemocap(release)
    assert len(rows) == 5 * 2 * 2 * 5  # sessions x dialogs x actors x (neu ang sad hap exc)
    counts = {label: sum(r["label"] == label for r in rows) for label in ("neutral", "angry", "sad", "happy")}
    assert counts == {"neutral": 20, "angry": 20, "sad": 20, "happy": 40}
    assert rows.excluded == {"fru (not one of the 4 classes)": 20, "xxx (not one of the 4 classes)": 20}
    # The Categorical/ file's "sad" for Ses01F_impro01_F000 is not the consensus label.
    f000 = next(r for r in rows if r["path"].endswith("Ses01F_impro01_F000.wav"))
    assert f000["label"] == "neutral" and f000["speaker"] == "Ses01F" and f000["arousal"] == 1.5
    assert {r["speaker"] for r in rows} == {f"Ses0{k}{g}" for k in range(1, 6) for g in "FM"}


def test_the_dimensional_task_keeps_every_rated_utterance_on_the_same_folds(release):
    rows = load_iemocap(release, every_rated=True)
    assert len(rows) == 5 * 2 * 2 * 7 and not rows.excluded  # fru and xxx too: each has its ratings
    prepared = prepare_splits(_args(release, fold=0), task="dimensional")
    assert sum(len(split) for split in prepared.splits.values()) == len(rows)
    assert {row["speaker"] for row in prepared.splits["test"]} == {"Ses01F", "Ses01M"}
    fru = next(r for r in prepared.splits["test"] if r["path"].endswith("Ses01F_impro01_F005.wav"))
    assert fru["label"] == "fru" and fru["dimensions"] == [(2.5 - 1) / 4, 0.5, (2.5 - 1) / 4]  # A, D, V on 1-5


def test_a_full_release_with_another_count_says_so(release, caplog):
    load_iemocap(release)
    assert "where the full release has 5531" in caplog.text


def test_missing_wavs_are_named(tmp_path):
    make_iemocap_tree(tmp_path, sessions=(1,))
    gone = next((tmp_path / "IEMOCAP_full_release" / "Session1" / "sentences" / "wav").rglob("*_F001.wav"))
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="1 labelled utterances have no wav"):
        load_iemocap(tmp_path)


def test_leave_one_session_out_with_selection_on_training_sessions(release):
    # Fold k: session k+1 is the test split; the next session's actors select the checkpoint; three sessions train.
    for fold in range(5):
        prepared = prepare_splits(_args(release, fold=fold))
        speakers = {split: {r["speaker"] for r in rows} for split, rows in prepared.splits.items()}
        test, validation = fold + 1, (fold + 1) % 5 + 1
        assert speakers["test"] == {f"Ses0{test}F", f"Ses0{test}M"}
        assert speakers["validation"] == {f"Ses0{validation}F", f"Ses0{validation}M"}
        assert speakers["train"] == {f"Ses0{k}{g}" for k in range(1, 6) if k not in (test, validation) for g in "FM"}
        assert prepared.speaker_independent
        assert "Leave one session out" in prepared.protocol and "test" in prepared.split_names


def test_emobox_names_the_same_session_folds(release):
    assert emobox_folds("iemocap") == [[f"Ses0{k}F", f"Ses0{k}M"] for k in range(1, 6)]
    ours = prepare_splits(_args(release, fold=2)).splits["test"]
    theirs = prepare_splits(_args(release, fold=2, fold_scheme="emobox")).splits["test"]
    assert ours == theirs


def test_fold_settings_the_protocol_does_not_have_are_refused(release):
    with pytest.raises(UsageError, match="5 folds of its own"):
        resolve_data_args(dataclasses.replace(_args(release), n_folds=6))
    with pytest.raises(UsageError, match="drop --test_fold"):
        resolve_data_args(_args(release, test_fold=3))
    # The default protocol can still be asked for explicitly, and is then a validation fold as for RAVDESS.
    validation = prepare_splits(_args(release, held_out_split="validation", fold=1)).splits
    assert {r["speaker"] for r in validation["validation"]} == {"Ses02F", "Ses02M"} and "test" not in validation


def test_the_left_out_labels_are_in_the_data_report(release, tmp_path):
    prepared = prepare_corpus(_args(release), tmp_path, decode=False)
    report = json.loads((tmp_path / "data_report.json").read_text())
    assert report["excluded_by_label"] == {"fru (not one of the 4 classes)": 20, "xxx (not one of the 4 classes)": 20}
    assert prepared.excluded == report["excluded_by_label"]

"""Speaker folds are gender-balanced and fixed; splits never share a speaker."""

import itertools
import random
from collections import Counter

import pytest

from ser_hf.data.splits import assert_speaker_independent, describe_split, speaker_folds, split_by_fold
from ser_hf.errors import UsageError

RAVDESS_GENDERS = {f"Actor_{a:02d}": "male" if a % 2 else "female" for a in range(1, 25)}


def _rows(speaker_to_gender, clips_per_speaker=60):
    return [
        {"path": f"{speaker}/{i}.wav", "speaker": speaker, "gender": gender}
        for speaker, gender in speaker_to_gender.items()
        for i in range(clips_per_speaker)
    ]


def test_ravdess_folds_are_the_documented_actor_blocks():
    folds = speaker_folds(RAVDESS_GENDERS)
    assert folds == [[f"Actor_{a:02d}" for a in range(4 * k + 1, 4 * k + 5)] for k in range(6)]
    for fold in folds:
        assert Counter(RAVDESS_GENDERS[s] for s in fold) == {"male": 2, "female": 2}
    assert sorted(itertools.chain(*folds)) == sorted(RAVDESS_GENDERS)  # each actor exactly once


def test_folds_do_not_depend_on_input_order():
    items = list(RAVDESS_GENDERS.items())
    random.Random(3).shuffle(items)
    assert speaker_folds(dict(items)) == speaker_folds(RAVDESS_GENDERS)


def test_seeded_folds_are_shuffled_but_still_balanced():
    plain = speaker_folds(RAVDESS_GENDERS)
    seeded = speaker_folds(RAVDESS_GENDERS, seed=1)
    assert seeded != plain
    assert seeded == speaker_folds(RAVDESS_GENDERS, seed=1)
    assert seeded != speaker_folds(RAVDESS_GENDERS, seed=2)
    assert sorted(itertools.chain(*seeded)) == sorted(RAVDESS_GENDERS)
    for fold in seeded:
        assert Counter(RAVDESS_GENDERS[s] for s in fold) == {"male": 2, "female": 2}


@pytest.mark.parametrize("n_males, n_females, n_folds", [(5, 5, 4), (5, 4, 3), (7, 1, 3), (3, 3, 2), (1, 0, 2)])
def test_uneven_genders_stay_balanced(n_males, n_females, n_folds):
    genders = {f"m{i}": "male" for i in range(n_males)} | {f"f{i}": "female" for i in range(n_females)}
    if n_folds > len(genders):
        with pytest.raises(UsageError, match="needs at least 2 speakers and the corpus has 1"):
            speaker_folds(genders, n_folds=n_folds)
        return
    folds = speaker_folds(genders, n_folds=n_folds)
    assert len(folds) == n_folds
    assert sorted(itertools.chain(*folds)) == sorted(genders)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for gender in ("male", "female"):
        per_fold = [sum(genders[s] == gender for s in fold) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_natural_speaker_order():
    genders = {f"spk{i}": "x" for i in (1, 2, 10, 11)}
    assert speaker_folds(genders, n_folds=2) == [["spk1", "spk2"], ["spk10", "spk11"]]


def test_too_few_folds():
    with pytest.raises(ValueError, match="at least 2"):
        speaker_folds(RAVDESS_GENDERS, n_folds=1)


@pytest.mark.parametrize("eval_fold", range(6))
def test_split_by_fold_is_speaker_independent_for_every_fold(eval_fold):
    rows = _rows(RAVDESS_GENDERS)
    folds = speaker_folds(RAVDESS_GENDERS)
    test_fold = (eval_fold + 1) % 6
    for test in (None, test_fold):
        splits = split_by_fold(rows, folds, eval_fold=eval_fold, test_fold=test)
        speakers = {name: {r["speaker"] for r in split} for name, split in splits.items()}
        assert speakers["validation"] == set(folds[eval_fold])
        assert not speakers["train"] & speakers["validation"]
        if test is None:
            assert set(splits) == {"train", "validation"}
            assert (len(splits["train"]), len(splits["validation"])) == (1200, 240)
        else:
            assert speakers["test"] == set(folds[test])
            assert not speakers["train"] & speakers["test"] and not speakers["validation"] & speakers["test"]
            assert [len(splits[k]) for k in ("train", "validation", "test")] == [960, 240, 240]
        assert sum(len(s) for s in splits.values()) == len(rows)
        assert_speaker_independent(splits)


def test_split_keeps_row_order():
    rows = _rows(RAVDESS_GENDERS, clips_per_speaker=2)
    splits = split_by_fold(rows, speaker_folds(RAVDESS_GENDERS), eval_fold=2)
    assert splits["train"] == [r for r in rows if r in splits["train"]]


def test_split_argument_errors():
    rows = _rows(RAVDESS_GENDERS, clips_per_speaker=1)
    folds = speaker_folds(RAVDESS_GENDERS)
    with pytest.raises(ValueError, match="must differ"):
        split_by_fold(rows, folds, eval_fold=3, test_fold=3)
    for bad in (6, -1):
        with pytest.raises(ValueError, match=r"0\.\.5"):
            split_by_fold(rows, folds, eval_fold=bad)
    with pytest.raises(ValueError, match=r"test_fold=9.*0\.\.5"):
        split_by_fold(rows, folds, eval_fold=0, test_fold=9)


def test_split_refuses_speakers_in_no_fold():
    rows = _rows(RAVDESS_GENDERS, clips_per_speaker=1) + [{"speaker": "Actor_1"}]
    with pytest.raises(ValueError, match="Actor_1"):
        split_by_fold(rows, speaker_folds(RAVDESS_GENDERS), eval_fold=0)


def test_split_refuses_a_speaker_listed_in_two_folds():
    # Hand-edited folds: without the check Actor_05 would silently count as fold 1 only, and fold 0's
    # validation split would lack the clips its fold list promises.
    folds = speaker_folds(RAVDESS_GENDERS)
    folds[0] = folds[0] + ["Actor_05"]
    rows = _rows(RAVDESS_GENDERS, clips_per_speaker=1)
    with pytest.raises(ValueError, match=r"Speaker 'Actor_05' is in folds 0 and 1"):
        split_by_fold(rows, folds, eval_fold=0)


def test_split_refuses_empty_validation():
    folds = speaker_folds(RAVDESS_GENDERS)
    rows = [r for r in _rows(RAVDESS_GENDERS, clips_per_speaker=1) if r["speaker"] not in folds[5]]
    with pytest.raises(ValueError, match="validation split is empty"):
        split_by_fold(rows, folds, eval_fold=5)


def test_split_custom_speaker_key():
    rows = [{"spk": s} for s in ("a", "b", "c", "d")]
    splits = split_by_fold(rows, speaker_folds({s: "x" for s in "abcd"}, n_folds=2), eval_fold=1, speaker_key="spk")
    assert splits == {"train": [{"spk": "a"}, {"spk": "b"}], "validation": [{"spk": "c"}, {"spk": "d"}]}


def test_assert_speaker_independent_names_leaking_speakers():
    splits = {
        "train": [{"speaker": "Actor_01"}, {"speaker": "Actor_02"}],
        "validation": [{"speaker": "Actor_02"}, {"speaker": "Actor_03"}],
        "test": [{"speaker": "Actor_03"}, {"speaker": "Actor_04"}],
    }
    with pytest.raises(ValueError) as info:
        assert_speaker_independent(splits)
    message = str(info.value)
    assert "Actor_02 in train, validation" in message and "Actor_03 in test, validation" in message
    assert "Actor_01" not in message and "Actor_04" not in message


def test_describe_split():
    splits = split_by_fold(_rows(RAVDESS_GENDERS), speaker_folds(RAVDESS_GENDERS), eval_fold=0)
    text = describe_split(splits)
    assert "validation: 240 clips, 4 speakers (Actor_01, Actor_02, Actor_03, Actor_04)" in text
    assert text.startswith("train: 1200 clips, 20 speakers (Actor_05, ")

"""EmoBox's folds as data: the RAVDESS actor sets read from EmoBox's published test files, and the refusals."""

import itertools
import re

import pytest

from ser_hf.corpora import corpus_names
from ser_hf.corpora.emobox import EMOBOX_FOLDS, RAVDESS_SOURCE, emobox_fold_name, emobox_folds

# The actors of data/ravdess/fold_<n>/ravdess_test_fold_<n>.jsonl in github.com/emo-box/EmoBox, as read there:
# any change to the data must be a deliberate change of both.
EMOBOX_RAVDESS_TEST_ACTORS = {
    "fold_1": (1, 11, 20, 21), "fold_2": (4, 10, 12, 14), "fold_3": (8, 9, 19, 23),
    "fold_4": (3, 5, 7, 24), "fold_5": (2, 15, 16, 18), "fold_6": (6, 13, 17, 22),
}


def test_ravdess_folds_are_emobox_test_actors_each_actor_once():
    folds = emobox_folds("ravdess")
    assert len(folds) == 6 and all(len(fold) == 4 for fold in folds)
    assert {emobox_fold_name(k): tuple(int(s.removeprefix("Actor_")) for s in fold)
            for k, fold in enumerate(folds)} == EMOBOX_RAVDESS_TEST_ACTORS
    every = list(itertools.chain(*folds))
    assert sorted(every) == [f"Actor_{a:02d}" for a in range(1, 25)]  # all 24 actors, none twice


def test_each_fold_names_the_file_and_commit_it_was_read_from():
    assert [path for path, _ in RAVDESS_SOURCE] == [
        f"data/ravdess/fold_{n}/ravdess_test_fold_{n}.jsonl" for n in range(1, 7)]
    assert all(re.fullmatch(r"[0-9a-f]{40}", commit) for _, commit in RAVDESS_SOURCE)
    assert len(RAVDESS_SOURCE) == len(emobox_folds("ravdess"))


def test_callers_cannot_change_the_folds():
    emobox_folds("ravdess")[0].append("Actor_99")
    assert "Actor_99" not in emobox_folds("ravdess")[0]
    with pytest.raises(TypeError):
        EMOBOX_FOLDS["demo"] = ()


def test_emobox_corpora_are_corpora_we_load():
    assert set(EMOBOX_FOLDS) <= set(corpus_names())


def test_cremad_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"CREMA-D.*25 %.*same actors in train and test.*available for: ravdess"):
        emobox_folds("cremad")


@pytest.mark.parametrize("corpus", ["demo", "manifest", "audiofolder", "hub"])
def test_a_corpus_without_emobox_folds_names_the_ones_with(corpus):
    with pytest.raises(ValueError, match=rf"no folds for --corpus {corpus}; EmoBox folds are available for: ravdess"):
        emobox_folds(corpus)

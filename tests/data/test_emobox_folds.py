"""`--fold_scheme emobox`: the splits hold out exactly EmoBox's actors, the card says so, cross-validation runs
EmoBox's folds, and corpora or settings EmoBox's folds do not fit are refused in one line before any data work."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ser_hf.commands import crossval
from ser_hf.config import DataArguments, ModelArguments, SERTrainingArguments
from ser_hf.corpora.emobox import emobox_folds
from ser_hf.data.prepare import prepare_splits, resolve_data_args
from ser_hf.errors import UsageError
from ser_hf.evaluation.metrics import compute_ser_metrics
from ser_hf.experiments import crossval as crossval_experiment
from ser_hf.reporting.model_card import render_model_card
from ser_hf.reporting.results import card_info
from tests.conftest import make_ravdess_tree

ROOT = Path(__file__).resolve().parents[2]
ALL_ACTORS = {f"Actor_{a:02d}" for a in range(1, 25)}


@pytest.fixture(scope="module")
def ravdess24(tmp_path_factory):
    """All 24 RAVDESS actors (8 clips each): every EmoBox fold has its four actors on disk."""
    return make_ravdess_tree(tmp_path_factory.mktemp("ravdess24"), actors=24)


def _data_args(tree, **overrides):
    return DataArguments(corpus="ravdess", data_dir=str(tree), download=False, fold_scheme="emobox", **overrides)


def _speakers(rows):
    return {row["speaker"] for row in rows}


@pytest.mark.parametrize("fold", range(6))
def test_validation_holds_exactly_emobox_actors_of_the_fold(ravdess24, fold):
    prepared = prepare_splits(_data_args(ravdess24, fold=fold))
    expected = set(emobox_folds("ravdess")[fold])
    assert set(prepared.splits) == {"train", "validation"}
    assert _speakers(prepared.splits["validation"]) == expected
    assert _speakers(prepared.splits["train"]) == ALL_ACTORS - expected
    assert prepared.speaker_independent
    assert prepared.split_name == f"validation (fold {fold} = EmoBox fold_{fold + 1}: {', '.join(sorted(expected))})"
    assert "EmoBox folds" in prepared.protocol and "github.com/emo-box/EmoBox" in prepared.protocol


def test_test_fold_is_an_emobox_fold_too(ravdess24):
    prepared = prepare_splits(_data_args(ravdess24, fold=0, test_fold=3))
    folds = emobox_folds("ravdess")
    assert _speakers(prepared.splits["validation"]) == set(folds[0])
    assert _speakers(prepared.splits["test"]) == set(folds[3])
    assert _speakers(prepared.splits["train"]) == ALL_ACTORS - set(folds[0]) - set(folds[3])
    assert prepared.split_names["test"].startswith("test (fold 3 = EmoBox fold_4: Actor_03, Actor_05")
    assert "fold 3 = EmoBox fold_4 for test" in prepared.protocol


def test_default_scheme_keeps_ser_hf_folds(ravdess24):
    prepared = prepare_splits(dataclasses.replace(_data_args(ravdess24), fold_scheme="ser_hf"))
    assert _speakers(prepared.splits["validation"]) == {"Actor_01", "Actor_02", "Actor_03", "Actor_04"}
    assert "EmoBox" not in prepared.protocol + prepared.split_name


def test_model_card_states_the_emobox_scheme(ravdess24, tmp_path):
    prepared = prepare_splits(_data_args(ravdess24, fold=2))
    training_args = SERTrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none")
    info = card_info(ModelArguments(), _data_args(ravdess24, fold=2), training_args, prepared, num_train=160,
                     num_eval=32, command="ser-hf train recipes/configs/ravdess.yaml --fold_scheme emobox --fold 2",
                     data_markdown="")
    labels = prepared.label_names
    info.metrics = compute_ser_metrics(np.arange(32) % 8, np.arange(32) % 8, labels)
    card = render_model_card(info)
    protocol = card[card.index("## Evaluation protocol"):card.index("## Training")]
    assert "- Split: validation (fold 2 = EmoBox fold_3: Actor_08, Actor_09, Actor_19, Actor_23)" in protocol
    assert "EmoBox folds, the 6 folds of speakers EmoBox published" in protocol
    assert "On validation (fold 2 = EmoBox fold_3" in card  # the results section names it too


@pytest.mark.parametrize("corpus,extra,message", [
    ("cremad", {}, r"CREMA-D.*same actors in train and test"),
    ("demo", {}, r"no folds for --corpus demo"),
    ("manifest", {"manifest": "missing.csv"}, r"no folds for --corpus manifest"),
    ("hub", {"dataset_name": "someone/corpus"}, r"no folds for --corpus hub"),
])
def test_a_corpus_without_emobox_folds_is_refused_before_any_data_work(tmp_path, corpus, extra, message):
    data_args = DataArguments(corpus=corpus, fold_scheme="emobox", data_dir=str(tmp_path / "nothing"), **extra)
    with pytest.raises(UsageError, match=rf"^--fold_scheme emobox: .*{message}.*available for: ravdess"):
        resolve_data_args(data_args)
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("overrides,message", [
    ({"n_folds": 5}, r"EmoBox has 6 folds for ravdess, not --n_folds 5"),
    ({"fold_seed": 1}, r"EmoBox's folds are fixed.*drop --fold_seed"),
])
def test_fold_settings_that_contradict_emobox_are_refused(ravdess24, overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve_data_args(_data_args(ravdess24, **overrides))


class _Captured(Exception):
    pass


def test_crossval_runs_exactly_emobox_folds(ravdess24, tmp_path, monkeypatch):
    seen = {}

    def capture(config, overrides, data_args, folds, root, **kwargs):
        seen.update(data_args=data_args, folds=folds)
        raise _Captured

    monkeypatch.setattr(crossval_experiment, "run_crossval", capture)
    argv = [str(ROOT / "recipes/configs/ravdess.yaml"), "--fold_scheme", "emobox", "--data_dir", str(ravdess24),
            "--download", "false", "--use_cpu", "true", "--output_dir", str(tmp_path / "cv")]
    with pytest.raises(_Captured):
        crossval.main(argv)
    assert seen["folds"] == [0, 1, 2, 3, 4, 5]
    held_out = [_speakers(prepare_splits(dataclasses.replace(seen["data_args"], fold=k)).splits["validation"])
                for k in seen["folds"]]
    assert held_out == [set(fold) for fold in emobox_folds("ravdess")]  # fold k is EmoBox's fold_<k+1>
    with pytest.raises(_Captured):
        crossval.main([*argv, "--test_fold", "2"])
    assert seen["folds"] == [0, 1, 3, 4, 5]


def test_crossval_refuses_cremad_in_one_line(tmp_path, capsys):
    code = crossval.main([str(ROOT / "recipes/configs/cremad6.yaml"), "--fold_scheme", "emobox", "--n_folds", "6",
                          "--data_dir", str(tmp_path / "cremad"), "--use_cpu", "true",
                          "--output_dir", str(tmp_path / "cv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--fold_scheme emobox: EmoBox's CREMA-D split" in err[0]
    assert not (tmp_path / "cv").exists()

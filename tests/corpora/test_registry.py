"""The corpus registry: one spec per corpus, with its card facts, label sets and loader."""

import dataclasses
from collections import Counter

import pytest

from ser_hf.config import DataArguments
from ser_hf.corpora import CORPORA, CorpusSpec, corpus_names, get_corpus
from ser_hf.corpora.cremad import CREMAD_EMOTIONS, CREMAD_LABELS_21, CREMAD_LICENSE
from ser_hf.corpora.ravdess import RAVDESS_LABELS_15, RAVDESS_LICENSE
from ser_hf.data.prepare import load_corpus
from ser_hf.labels import RAVDESS_EMOTIONS
from tests.conftest import make_ravdess_tree, write_tone

NAMES = ("ravdess", "demo", "cremad", "iemocap", "msp_podcast", "emodb", "emobox", "manifest", "audiofolder", "hub")


def _data_args(**fields):
    """The real DataArguments (without the argument parser), never downloading; RAVDESS in data/ravdess by default."""
    return DataArguments(**{"corpus": "ravdess", "data_dir": "data/ravdess", "download": False, **fields})


def test_one_spec_per_corpus_in_a_fixed_order():
    assert corpus_names() == NAMES == tuple(CORPORA)
    assert all(isinstance(spec, CorpusSpec) and spec.name == name for name, spec in CORPORA.items())
    with pytest.raises(ValueError, match="ravdess, demo, cremad, iemocap"):
        get_corpus("esd")


def test_card_facts():
    assert get_corpus("ravdess").license == RAVDESS_LICENSE == "cc-by-nc-sa-4.0"
    assert get_corpus("cremad").license == CREMAD_LICENSE == "odbl"
    assert get_corpus("demo").license == "apache-2.0"
    assert {get_corpus(n).license for n in ("manifest", "audiofolder", "hub")} == {"other"}
    assert get_corpus("ravdess").display_name == "RAVDESS" and get_corpus("cremad").display_name == "CREMA-D"
    assert {n: get_corpus(n).default_data_dir for n in NAMES} == {
        "ravdess": "data/ravdess", "demo": "data/demo", "cremad": None, "iemocap": None, "msp_podcast": None,
        "emodb": "data/emodb", "emobox": None, "manifest": None, "audiofolder": None, "hub": None,
    }
    # The licensed corpora cannot be downloaded: they need --data_dir; their protocols are the published ones.
    assert get_corpus("iemocap").held_out == "test" and get_corpus("iemocap").n_folds == 5
    assert get_corpus("msp_podcast").official_splits and get_corpus("msp_podcast").dimension_range == (1.0, 7.0)
    assert get_corpus("iemocap").dimension_range == (1.0, 5.0) and get_corpus("emodb").dimension_range is None
    for name in ("ravdess", "demo", "cremad"):
        assert "English" in get_corpus(name).limitations
    assert "synthes" in get_corpus("demo").limitations and "91 actors" in get_corpus("cremad").limitations
    assert all(get_corpus(n).limitations is None for n in ("manifest", "audiofolder", "hub"))


def test_label_sets_and_their_default():
    cremad = get_corpus("cremad")
    assert cremad.label_set_names == ("21", "6") and cremad.default_label_set == "21"
    assert cremad.label_sets["21"] == CREMAD_LABELS_21 and cremad.label_sets["6"] == CREMAD_EMOTIONS
    assert cremad.resolve_label_set() == "21" and cremad.resolve_label_set(6) == "6" == cremad.resolve_label_set("6")
    with pytest.raises(ValueError, match="21, 6"):
        cremad.resolve_label_set(7)
    # The 21 labels collapse to the 6 emotions; the 6 collapse to nothing.
    assert cremad.emotions() == CREMAD_EMOTIONS == cremad.emotions(21) and cremad.emotions("6") is None
    for name in ("ravdess", "demo"):
        spec = get_corpus(name)
        assert spec.label_set_names == ("8", "15") and spec.default_label_set == "8"
        assert spec.label_sets["8"] == RAVDESS_EMOTIONS and spec.label_sets["15"] == RAVDESS_LABELS_15
        assert spec.emotions() is None and spec.emotions(15) == RAVDESS_EMOTIONS
    for name in ("manifest", "audiofolder", "hub"):
        spec = get_corpus(name)
        assert spec.label_sets is None and spec.default_label_set is None and spec.label_set_names == ()
        assert spec.emotions() is None
        with pytest.raises(ValueError, match="no label sets"):
            spec.resolve_label_set()


def test_ravdess_15_labels_are_emotion_x_intensity_with_neutral_at_normal_only():
    assert len(RAVDESS_LABELS_15) == len(set(RAVDESS_LABELS_15)) == 15
    assert RAVDESS_LABELS_15[:3] == ("neutral_normal", "calm_normal", "calm_strong")
    assert "neutral_strong" not in RAVDESS_LABELS_15


def test_specs_cannot_be_changed():
    cremad = get_corpus("cremad")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cremad.license = "mit"
    with pytest.raises(TypeError):
        cremad.label_sets["6"] = ("happy",)
    with pytest.raises(TypeError):
        CORPORA["mine"] = cremad
    with pytest.raises(ValueError, match="default label set"):
        dataclasses.replace(cremad, default_label_set="8")


def test_load_corpus_looks_the_loader_up(tmp_path):
    make_ravdess_tree(tmp_path / "ravdess", actors=2)
    rows, labels = load_corpus(_data_args(corpus="ravdess", data_dir=str(tmp_path / "ravdess")))
    assert labels == list(RAVDESS_EMOTIONS) and len(rows) == 16
    assert all(row["label"] == row["emotion"] for row in rows)
    rows, labels = load_corpus(_data_args(corpus="ravdess", data_dir=str(tmp_path / "ravdess"), labels="15"))
    assert labels == list(RAVDESS_LABELS_15) and len(rows) == 16
    assert all(row["label"] == f"{row['emotion']}_{row['intensity']}" in labels for row in rows)

    for code in ("ANG", "NEU"):
        write_tone(tmp_path / "cremad" / f"1001_IEO_{code}_{'XX' if code == 'NEU' else 'HI'}.wav", 0.2, 200, seed=0)
    for label_set, expected in ((21, CREMAD_LABELS_21), ("21", CREMAD_LABELS_21), (6, CREMAD_EMOTIONS),
                                ("6", CREMAD_EMOTIONS)):
        rows, labels = load_corpus(_data_args(corpus="cremad", data_dir=str(tmp_path / "cremad"), labels=label_set))
        assert labels == list(expected) and {row["label"] for row in rows} <= set(expected)

    for label in ("sad", "angry"):
        write_tone(tmp_path / "folder" / label / "a.wav", 0.2, 200, seed=0)
    rows, labels = load_corpus(_data_args(corpus="audiofolder", data_dir=str(tmp_path / "folder")))
    assert labels == ["angry", "sad"] and Counter(row["label"] for row in rows) == {"angry": 1, "sad": 1}
    (tmp_path / "m.csv").write_text("path,label\nfolder/sad/a.wav,sad\n")
    rows, labels = load_corpus(_data_args(corpus="manifest", manifest=str(tmp_path / "m.csv")))
    assert labels == ["sad"] and rows[0]["path"] == str((tmp_path / "folder" / "sad" / "a.wav").resolve())

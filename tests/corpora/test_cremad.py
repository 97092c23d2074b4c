"""CREMA-D file-name parsing, the fixed label sets, and the loader on small generated trees."""

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.corpora.cremad import (
    CREMAD_EMOTIONS,
    CREMAD_EXPECTED_FILES,
    CREMAD_LABELS_21,
    CREMAD_LICENSE,
    CREMAD_SENTENCES,
    cremad_labels,
    load_cremad,
    parse_cremad_filename,
)
from ser_hf.errors import UsageError
from tests.conftest import touch

_EMOTION_CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
_LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 52966\n"
)


def _actor_names(actor):
    """The names one complete actor has in the release: 11 sentences x 6 emotions at XX, plus IEO
    at LO/MD/HI for the 5 non-neutral emotions and IEO_NEU_XX = 82."""
    for sentence in CREMAD_SENTENCES:
        for code in _EMOTION_CODES:
            if sentence != "IEO":
                yield f"{actor}_{sentence}_{code}_XX.wav"
            elif code == "NEU":
                yield f"{actor}_IEO_NEU_XX.wav"
            else:
                for level in ("LO", "MD", "HI"):
                    yield f"{actor}_IEO_{code}_{level}.wav"


def _tree(root: Path, actors=(1001, 1002, 1003), sub="AudioWAV") -> Path:
    for actor in actors:
        for name in _actor_names(actor):
            touch(root / sub / name)
    return root


def _demographics(path: Path, rows=((1001, 51, "Male"), (1002, 21, "Female"), (1003, 21, "Female"))):
    lines = ['"ActorID","Age","Sex","Race","Ethnicity"']
    lines += [f'{a},{age},"{sex}","Caucasian","Not Hispanic"' for a, age, sex in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- parse_cremad_filename / label sets ------------------------------------------------------------


def test_parse_decodes_every_field():
    assert parse_cremad_filename("1001_DFA_ANG_XX.wav") == {
        "actor": 1001, "sentence": "DFA", "emotion": "angry", "level": "XX"
    }
    assert parse_cremad_filename("/x/AudioMP3/1091_IEO_SAD_LO.mp3") == {
        "actor": 1091, "sentence": "IEO", "emotion": "sad", "level": "LO"
    }


@pytest.mark.parametrize("name", ["readme.txt", "1001_DFA_ANG.wav", "1001-DFA-ANG-XX.wav", "01_DFA_ANG_XX.wav", "._1001"])
def test_parse_returns_none_for_other_names(name):
    assert parse_cremad_filename(name) is None


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("1001_DFA_XYZ_XX.wav", "emotion XYZ"),
        ("1001_ABC_ANG_XX.wav", "sentence ABC"),
        ("1001_DFA_ANG_ZZ.wav", "level ZZ"),
        ("1001_IEO_NEU_HI.wav", "neutral at level HI"),
        ("1092_DFA_ANG_XX.wav", "actor 1092"),
    ],
)
def test_parse_rejects_impossible_codes_naming_the_file(name, fragment):
    with pytest.raises(ValueError) as err:
        parse_cremad_filename(name)
    assert name in str(err.value) and fragment in str(err.value)


def test_label_sets_are_fixed_by_code():
    assert CREMAD_EMOTIONS == ("angry", "disgust", "fearful", "happy", "neutral", "sad")
    assert len(CREMAD_LABELS_21) == 21 == len(set(CREMAD_LABELS_21))
    assert CREMAD_LABELS_21[:4] == ("angry_hi", "angry_lo", "angry_md", "angry_xx")
    assert [l for l in CREMAD_LABELS_21 if l.startswith("neutral")] == ["neutral_xx"]
    assert CREMAD_LABELS_21.index("neutral_xx") == 16 and CREMAD_LABELS_21[-1] == "sad_xx"
    assert cremad_labels(21) == CREMAD_LABELS_21 and cremad_labels(6) == CREMAD_EMOTIONS
    assert cremad_labels("21") == CREMAD_LABELS_21 and cremad_labels("6") == CREMAD_EMOTIONS
    for bad in (7, 0, "7", "", "21 labels", None, True):
        with pytest.raises(ValueError):
            cremad_labels(bad)
    assert CREMAD_LICENSE == "odbl" and CREMAD_EXPECTED_FILES == 7442


# --- load_cremad ------------------------------------------------------------------------------------


def test_load_with_demographics_uses_gender_and_fixed_labels(tmp_path, caplog):
    root = _tree(tmp_path / "CREMA-D")
    # The clone's layout: VideoDemographics.csv beside AudioWAV; pointing at AudioWAV finds it in the parent.
    _demographics(root / "VideoDemographics.csv")
    touch(root / "AudioMP3" / "1001_DFA_ANG_XX.mp3")  # the release's mp3 copies are skipped
    touch(root / "AudioWAV" / "._1001_DFA_ANG_XX.wav")
    touch(root / "__MACOSX" / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.cremad"):
        rows = load_cremad(root)
        rows_wav = load_cremad(root / "AudioWAV", labels=6)
    assert len(rows) == 3 * 82 == len(rows_wav)
    first = rows[0]
    assert first == {
        "path": str((root / "AudioWAV" / "1001_DFA_ANG_XX.wav").resolve()),
        "speaker": "1001", "actor": 1001, "gender": "male", "sentence": "DFA",
        "emotion": "angry", "level": "XX", "label": "angry_xx",
    }
    assert {r["actor"]: r["gender"] for r in rows_wav} == {1001: "male", 1002: "female", 1003: "female"}
    assert {r["label"] for r in rows} == set(CREMAD_LABELS_21)
    assert {r["label"] for r in rows_wav} == set(CREMAD_EMOTIONS)
    assert "macOS metadata" in caplog.text and ".mp3" in caplog.text
    assert "expected 7442" in caplog.text  # a 3-actor tree is not the full release


def test_load_without_demographics_warns_once_and_gender_unknown(tmp_path, caplog):
    root = _tree(tmp_path / "wavs", actors=(1005, 1006), sub="")
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.cremad"):
        rows = load_cremad(root)
    assert {r["gender"] for r in rows} == {"unknown"}
    demo_warnings = [r for r in caplog.records if "VideoDemographics.csv" in r.getMessage()]
    assert len(demo_warnings) == 1
    assert "gender-stratified folds need videodemographics.csv" in demo_warnings[0].getMessage().lower()


def test_label_ids_do_not_depend_on_files_present(tmp_path):
    root = tmp_path / "partial"
    touch(root / "1001_DFA_SAD_XX.wav")
    touch(root / "1001_IEO_ANG_HI.wav")
    rows = load_cremad(root)
    assert [r["label"] for r in rows] == ["sad_xx", "angry_hi"]  # path order: DFA before IEO
    assert cremad_labels(21).index("angry_hi") == 0 and cremad_labels(21).index("sad_xx") == 20
    assert Counter(r["label"] for r in rows) == {"sad_xx": 1, "angry_hi": 1}


def test_class_counts_of_a_full_actor(tmp_path):
    for name in _actor_names(1001):
        touch(tmp_path / "c" / name)
    counts21 = Counter(r["label"] for r in load_cremad(tmp_path / "c", labels=21))
    assert set(counts21) == set(CREMAD_LABELS_21)  # a complete actor has every class
    assert counts21["neutral_xx"] == 12 and counts21["angry_xx"] == 11 and counts21["angry_lo"] == 1
    assert sum(counts21.values()) == 82
    counts6 = Counter(r["label"] for r in load_cremad(tmp_path / "c", labels="6"))
    assert counts6 == {"angry": 14, "disgust": 14, "fearful": 14, "happy": 14, "neutral": 12, "sad": 14}


def test_lfs_pointer_files_raise_with_the_fix(tmp_path):
    root = tmp_path / "clone"
    for name in list(_actor_names(1001))[:30]:
        touch(root / "AudioWAV" / name, _LFS_POINTER)
    with pytest.raises(UsageError) as err:
        load_cremad(root)
    message = str(err.value)
    assert "git-lfs pointer" in message and "git lfs pull" in message and "git lfs install" in message


def test_real_audio_is_not_mistaken_for_lfs_pointers(tmp_path):
    root = tmp_path / "real"
    for i, name in enumerate(list(_actor_names(1010))[:3]):
        root.mkdir(exist_ok=True)
        noise = np.random.default_rng(i).standard_normal(1600).astype(np.float32) * 0.1
        sf.write(root / name, noise, 16_000)
    assert len(load_cremad(root)) == 3


def test_missing_folder_and_empty_folder_explain_where_to_get_it(tmp_path):
    for target in (tmp_path / "nope", touch(tmp_path / "empty" / "notes.txt").parent):
        with pytest.raises(FileNotFoundError) as err:
            load_cremad(target)
        assert "github.com/CheyneyComputerScience/CREMA-D" in str(err.value) and "ODbL" in str(err.value)


def test_bad_name_in_tree_names_the_file(tmp_path):
    touch(tmp_path / "c" / "1001_DFA_XYZ_XX.wav")
    with pytest.raises(ValueError, match="1001_DFA_XYZ_XX.wav"):
        load_cremad(tmp_path / "c")


def test_bad_labels_argument(tmp_path):
    touch(tmp_path / "c" / "1001_DFA_ANG_XX.wav")
    with pytest.raises(ValueError, match="21"):
        load_cremad(tmp_path / "c", labels=8)


def test_duplicates_kept_once_with_a_warning(tmp_path, caplog):
    touch(tmp_path / "c" / "a" / "1001_DFA_ANG_XX.wav")
    touch(tmp_path / "c" / "b" / "1001_DFA_ANG_XX.wav")
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.cremad"):
        rows = load_cremad(tmp_path / "c")
    assert len(rows) == 1 and "a" in Path(rows[0]["path"]).parts
    assert "more than once" in caplog.text

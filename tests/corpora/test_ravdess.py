"""RAVDESS file-name parsing, the loader's filtering, and prepare_ravdess against a loopback server."""

import hashlib
import http.server
import logging
import threading
import zipfile
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.corpora.ravdess import (
    RAVDESS_EXPECTED_FILES,
    RAVDESS_URL,
    RAVDESS_ZIP_NAME,
    load_ravdess,
    parse_ravdess_filename,
    prepare_ravdess,
)
from ser_hf.labels import RAVDESS_EMOTIONS
from tests.conftest import touch


def _name(m=3, v=1, e=1, i=1, s=1, r=1, a=1, ext=".wav"):
    return f"{m:02d}-{v:02d}-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{a:02d}{ext}"


def _all_speech_names(actors=range(1, 25)):
    """The names of the real speech release: 60 per actor, 1440 for all 24."""
    for a in actors:
        for e in range(1, 9):
            for i in (1,) if e == 1 else (1, 2):  # neutral has no strong intensity
                for s in (1, 2):
                    for r in (1, 2):
                        yield f"Actor_{a:02d}/{_name(e=e, i=i, s=s, r=r, a=a)}"


# --- parse_ravdess_filename ------------------------------------------------------------------------


def test_parse_decodes_every_field():
    assert parse_ravdess_filename("03-01-05-02-01-02-12.wav") == {
        "modality": "audio-only",
        "vocal_channel": "speech",
        "emotion": "angry",
        "intensity": "strong",
        "statement": 1,
        "repetition": 2,
        "actor": 12,
    }
    meta = parse_ravdess_filename("/any/dir/01-02-03-01-02-01-07.mp4")
    assert (meta["modality"], meta["vocal_channel"], meta["emotion"], meta["actor"]) == ("full-AV", "song", "happy", 7)
    assert parse_ravdess_filename(_name(m=2))["modality"] == "video-only"


def test_parse_emotion_codes_follow_label_order():
    for code, emotion in enumerate(RAVDESS_EMOTIONS, start=1):
        assert parse_ravdess_filename(_name(e=code))["emotion"] == emotion


@pytest.mark.parametrize(
    "name",
    ["foo.wav", "03-01-01-01-01-01.wav", "03-01-01-01-01-01-1.wav", "03-01-01-01-01-01-01-01.wav", "3-1-1-1-1-1-1.wav"],
)
def test_parse_returns_none_for_other_names(name):
    assert parse_ravdess_filename(name) is None


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"e": 9}, "emotion 09"),
        ({"e": 1, "i": 2}, "neutral with strong"),
        ({"m": 4}, "modality 04"),
        ({"v": 3}, "vocal channel 03"),
        ({"i": 3, "e": 2}, "intensity 03"),
        ({"s": 3}, "statement 03"),
        ({"r": 0}, "repetition 00"),
        ({"a": 25}, "actor 25"),
        ({"a": 0}, "actor 00"),
        ({"v": 2, "e": 8}, "song"),
    ],
)
def test_parse_rejects_impossible_codes(fields, problem):
    name = _name(**fields)
    with pytest.raises(ValueError, match=problem) as info:
        parse_ravdess_filename(name)
    assert name in str(info.value)


# --- load_ravdess ---------------------------------------------------------------------------------


def test_loader_filters_a_messy_tree(tmp_path, caplog):
    root = tmp_path / "corpus"
    keep = [
        touch(root / "deep" / "nested" / "Actor_01" / _name(e=5, i=2, s=2, r=1, a=1)),
        touch(root / "Actor_02" / _name(e=1, a=2)),
        touch(root / "Actor_24" / _name(e=8, i=2, s=1, r=2, a=24)),
    ]
    # Real 48 kHz audio works too, and nothing is read from it.
    real = touch(root / "Actor_03" / _name(e=3, a=3))
    sf.write(real, np.random.default_rng(0).normal(0, 0.1, 4800).astype("float32"), 48_000, subtype="PCM_16")
    keep.append(real)
    touch(root / "Actor_01" / _name(v=2, e=2, a=1))  # song
    touch(root / "Actor_01" / _name(m=1, a=1, ext=".mp4"))  # full AV video
    touch(root / "Actor_01" / _name(m=2, a=1, ext=".mp4"))  # video only
    touch(root / "Actor_01" / _name(m=1, a=1, ext=".wav"))  # wrong modality even with .wav
    touch(root / "Actor_01" / ("._" + _name(e=2, a=1)))  # AppleDouble
    touch(root / "__MACOSX" / "Actor_01" / _name(e=4, a=1))
    touch(root / "Actor_01" / _name(e=6, a=1, ext=".mp3"))  # audio-only speech but not wav
    touch(root / "README.txt")
    touch(root / "Actor_01" / "notes.wav")
    touch(root / ".hidden_marker.json")
    touch(root / ".data.Audio_Speech_Actors_01-24.extracting" / _name(e=2, a=2))  # killed extraction's temp
    touch(root / "copy" / _name(e=1, a=2))  # the Actor_02 clip again, in another folder

    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.ravdess"):
        rows = load_ravdess(root)

    assert [r["path"] for r in rows] == sorted(str(p.resolve()) for p in keep)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name[_name(e=5, i=2, s=2, r=1, a=1)] == {
        "path": str((root / "deep" / "nested" / "Actor_01" / _name(e=5, i=2, s=2, r=1, a=1)).resolve()),
        "speaker": "Actor_01",
        "actor": 1,
        "gender": "male",
        "emotion": "angry",
        "intensity": "strong",
        "statement": 2,
        "repetition": 1,
    }
    assert by_name[_name(e=1, a=2)]["gender"] == "female" and by_name[_name(e=1, a=2)]["speaker"] == "Actor_02"
    assert by_name[_name(e=8, i=2, s=1, r=2, a=24)]["emotion"] == "surprised"
    assert by_name[_name(e=1, a=2)]["path"] == str((root / "Actor_02" / _name(e=1, a=2)).resolve())  # first kept

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"Found 4 RAVDESS speech clips under {root.resolve()}, expected 1440" in w for w in warnings)
    assert any("1 RAVDESS clips appear more than once" in w for w in warnings)
    infos = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    for expected in ["1 song files", "2 full-AV modality files", "1 video-only modality files",
                     "2 macOS metadata", "2 names not of the RAVDESS form", "1 audio-only files that are not .wav"]:
        assert expected in infos


def test_full_corpus_counts_and_no_warning(tmp_path, caplog):
    for rel in _all_speech_names():
        touch(tmp_path / rel)
    with caplog.at_level(logging.WARNING):
        rows = load_ravdess(tmp_path)
    assert len(rows) == RAVDESS_EXPECTED_FILES
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert set(Counter(r["speaker"] for r in rows).values()) == {60}
    per_emotion = Counter(r["emotion"] for r in rows)
    assert per_emotion == {e: 96 if e == "neutral" else 192 for e in RAVDESS_EMOTIONS}
    assert Counter(r["gender"] for r in rows) == {"male": 720, "female": 720}
    assert load_ravdess(tmp_path) == rows  # deterministic order


def test_invalid_code_names_the_file(tmp_path):
    touch(tmp_path / "Actor_01" / _name(a=1))
    bad = touch(tmp_path / "Actor_01" / _name(e=9, a=1))
    with pytest.raises(ValueError, match=r"emotion 09") as info:
        load_ravdess(tmp_path)
    assert str(bad) in str(info.value)


def test_no_clips_raises_file_not_found(tmp_path):
    touch(tmp_path / "Actor_01" / _name(v=2, a=1))  # only a song
    with pytest.raises(FileNotFoundError, match="--data_dir") as info:
        load_ravdess(tmp_path)
    assert "1 song files" in str(info.value) and RAVDESS_URL in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_ravdess(tmp_path / "missing")


def test_follows_symlinked_actor_folders(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere / _name(a=5))
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "Actor_05").symlink_to(elsewhere, target_is_directory=True)
    (root / "Actor_05" / "loop").symlink_to(root, target_is_directory=True)  # must not recurse forever
    rows = load_ravdess(root)
    assert [r["speaker"] for r in rows] == ["Actor_05"]


# --- prepare_ravdess ------------------------------------------------------------------------------


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        self.path = self.path.split("?")[0]
        super().do_GET()


@pytest.fixture
def corpus_server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    archive = www / RAVDESS_ZIP_NAME
    with zipfile.ZipFile(archive, "w") as zf:
        for rel in _all_speech_names(actors=(1, 2, 24)):  # a small corpus keeps the test fast
            zf.writestr(rel, b"")
        zf.writestr("Actor_01/" + _name(v=2, a=1), b"")  # a song file that must be skipped
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_CountingHandler, directory=str(www)))
    httpd.requests = []
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/{RAVDESS_ZIP_NAME}?download=1"
    httpd.md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_prepare_downloads_extracts_and_is_idempotent(tmp_path, corpus_server):
    data_dir = tmp_path / "data" / "ravdess"
    rows = prepare_ravdess(data_dir, url=corpus_server.url, md5=corpus_server.md5)
    assert len(rows) == 3 * 60 and {r["speaker"] for r in rows} == {"Actor_01", "Actor_02", "Actor_24"}
    assert (data_dir / RAVDESS_ZIP_NAME).is_file() and (data_dir / "Actor_24").is_dir()
    assert len(corpus_server.requests) == 1

    assert prepare_ravdess(data_dir, url=corpus_server.url, md5=corpus_server.md5) == rows
    assert prepare_ravdess(data_dir, download=False, md5=corpus_server.md5) == rows
    assert len(corpus_server.requests) == 1  # no second download

    # Interrupted extraction (marker gone, files missing): redone from the local zip, still no request.
    next(data_dir.glob(".*.extracted.json")).unlink()
    for path in (data_dir / "Actor_24").iterdir():
        path.unlink()
    assert prepare_ravdess(data_dir, url=corpus_server.url, md5=corpus_server.md5) == rows
    assert len(corpus_server.requests) == 1


def test_prepare_rejects_wrong_md5(tmp_path, corpus_server):
    data_dir = tmp_path / "ravdess"
    with pytest.raises(ValueError, match="Checksum mismatch"):
        prepare_ravdess(data_dir, url=corpus_server.url, md5="f" * 32)
    assert not (data_dir / RAVDESS_ZIP_NAME).exists()
    assert not list(data_dir.glob("Actor_*"))


def test_prepare_uses_existing_files_without_network(tmp_path):
    touch(tmp_path / "Actor_07" / _name(e=2, a=7))
    rows = prepare_ravdess(tmp_path, url="http://127.0.0.1:9/unreachable.zip")  # would fail if contacted
    assert [r["speaker"] for r in rows] == ["Actor_07"]


def test_prepare_without_download_explains_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        prepare_ravdess(tmp_path / "empty", download=False)
    assert "--data_dir" in str(info.value) and RAVDESS_URL in str(info.value)

"""The espeak-ng demo corpus: RAVDESS layout, audio format, determinism, reuse, and emotions that differ."""

import json
import logging
import re
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ser_hf.corpora import demo as demo_corpus
from ser_hf.corpora.demo import MARKER_NAME, PROSODY, synthesize_demo_corpus
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.errors import UsageError
from ser_hf.labels import RAVDESS_EMOTIONS

NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")


def _wavs(root):
    return sorted(root.glob("Actor_*/*.wav"))


def _bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in _wavs(root)}


def _fields(path):
    modality, channel, emotion, intensity, statement, repetition, actor = map(int, NAME.match(path.name).groups())
    return dict(modality=modality, channel=channel, emotion=emotion, intensity=intensity,
                statement=statement, repetition=repetition, actor=actor)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # espeak-ng is a test dependency (run.sh installs it): a missing one fails here, it is not skipped.
    return synthesize_demo_corpus(tmp_path_factory.mktemp("demo"), seed=0, n_actors=2)


def test_layout_is_ravdess_speech(corpus):
    paths = _wavs(corpus)
    assert len(paths) == 120  # 2 actors x (4 neutral + 7 emotions x 2 intensities x 2 statements x 2 repetitions)
    assert sorted(p.name for p in corpus.iterdir() if p.is_dir()) == ["Actor_01", "Actor_02"]
    seen = set()
    for path in paths:
        assert NAME.match(path.name), path.name
        f = _fields(path)
        assert (f["modality"], f["channel"]) == (3, 1)
        assert 1 <= f["emotion"] <= 8 and f["intensity"] in (1, 2) and f["statement"] in (1, 2)
        assert f["repetition"] in (1, 2) and f["actor"] in (1, 2)
        assert path.parent.name == f"Actor_{f['actor']:02d}"
        assert not (f["emotion"] == 1 and f["intensity"] == 2), "RAVDESS has no strong neutral"
        seen.add(tuple(f.values()))
    assert len(seen) == 120
    per_emotion = Counter(_fields(p)["emotion"] for p in paths)
    assert per_emotion == {1: 8, **{code: 16 for code in range(2, 9)}}
    marker = json.loads((corpus / MARKER_NAME).read_text())
    assert marker["complete"] is True and marker["n_files"] == 120 and marker["seed"] == 0
    assert not list(corpus.rglob("*.tmp")), "temporary files left behind"


def test_audio_is_16k_mono_pcm16_trimmed_and_short(corpus):
    for path in _wavs(corpus):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16"), path.name
        assert 0.5 < info.duration <= 5.0, (path.name, info.duration)
        audio, _ = sf.read(path, dtype="float32")
        assert np.sqrt(np.mean(audio**2)) > 0.005 and np.abs(audio).max() > 0.05, f"{path.name} is near silent"
        # Trimmed to ~50 ms around speech: espeak-ng itself ends every clip with ~0.3 s of silence.
        audible = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
        assert audible[0] < 0.15 * SAMPLE_RATE and len(audio) - audible[-1] < 0.15 * SAMPLE_RATE, path.name


def test_long_clips_are_capped(tmp_path, monkeypatch):
    # No clip of the real table reaches 5 s; a lower cap shows that the cap is applied.
    monkeypatch.setattr(demo_corpus, "MAX_SECONDS", 0.5)
    command = demo_corpus._espeak_command(shutil.which("espeak-ng"), 0, 1, 7, 2, 1, 1)  # strong disgust: slowest
    demo_corpus._synthesize_one(tmp_path / "clip.wav", command)
    assert sf.info(tmp_path / "clip.wav").frames == SAMPLE_RATE // 2


def test_same_seed_same_bytes_other_seed_other_audio(corpus, tmp_path):
    # One actor, one worker: neither the corpus size nor the thread schedule may change a file.
    again = synthesize_demo_corpus(tmp_path / "again", seed=0, n_actors=1, workers=1)
    reference = {k: v for k, v in _bytes(corpus).items() if k.startswith("Actor_01/")}
    assert _bytes(again) == reference
    other = _bytes(synthesize_demo_corpus(tmp_path / "other", seed=1, n_actors=1))
    assert other.keys() == reference.keys()
    assert sum(other[k] != reference[k] for k in reference) == len(reference)


def test_complete_corpus_is_reused_without_espeak(corpus, monkeypatch, caplog):
    mtimes = {p: p.stat().st_mtime_ns for p in _wavs(corpus)}

    def fail(*args, **kwargs):
        raise AssertionError("a complete corpus must not be synthesised again")

    monkeypatch.setattr(demo_corpus, "_synthesize_one", fail)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.demo"):
        assert synthesize_demo_corpus(str(corpus), seed=0, n_actors=2) == corpus
        demo_corpus.main(["--out_dir", str(corpus), "--n_actors", "2"])
    assert "Reusing" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in _wavs(corpus)} == mtimes


def test_incomplete_or_other_seed_corpus_is_regenerated(tmp_path):
    out = synthesize_demo_corpus(tmp_path, seed=1, n_actors=1)
    first = _bytes(out)
    victim = _wavs(out)[7]
    victim.unlink()
    (out / "Actor_01" / f".{victim.name}.tmp").write_bytes(b"half a file")  # what a killed run leaves
    synthesize_demo_corpus(out, seed=1, n_actors=1)
    assert _bytes(out) == first and not list(out.rglob("*.tmp"))
    synthesize_demo_corpus(out, seed=2, n_actors=1)
    assert json.loads((out / MARKER_NAME).read_text())["seed"] == 2
    assert _bytes(out).keys() == first.keys() and _bytes(out) != first


def test_missing_espeak_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match=r"apt-get install -y espeak-ng.*brew install espeak-ng"):
        synthesize_demo_corpus(tmp_path / "demo", n_actors=1)
    assert not list(tmp_path.rglob("*.wav"))


def test_refuses_to_overwrite_audio_it_did_not_write(tmp_path):
    real = tmp_path / "Actor_01" / "03-01-05-02-01-02-01.wav"
    real.parent.mkdir()
    real.write_bytes(b"a real RAVDESS recording")
    with pytest.raises(UsageError, match="not written by this generator"):
        synthesize_demo_corpus(tmp_path, n_actors=1)
    assert real.read_bytes() == b"a real RAVDESS recording"


@pytest.mark.parametrize("n_actors", [0, 25])
def test_n_actors_out_of_range(tmp_path, n_actors):
    with pytest.raises(ValueError, match="n_actors"):
        synthesize_demo_corpus(tmp_path, n_actors=n_actors)


def test_prosody_table_covers_every_emotion_with_the_same_fields():
    assert set(PROSODY) == set(RAVDESS_EMOTIONS)
    assert len({tuple(sorted(fields)) for fields in PROSODY.values()}) == 1
    assert PROSODY["neutral"]["rate"] == 1.0 and PROSODY["neutral"]["pitch"] == 0


def test_voice_variants_exist():
    # espeak-ng silently falls back to its default voice for an unknown variant: actors would sound alike.
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    installed = set(re.findall(r"!v/(\S+)", listing))
    assert set(demo_corpus.MALE_VARIANTS + demo_corpus.FEMALE_VARIANTS) <= installed
    assert len(set(demo_corpus.MALE_VARIANTS)) == len(set(demo_corpus.FEMALE_VARIANTS)) == 12


def test_emotions_differ_measurably(corpus):
    import librosa

    stats = {}
    for path in _wavs(corpus):
        audio, _ = sf.read(path, dtype="float32")
        f0 = librosa.yin(audio, fmin=60, fmax=600, sr=SAMPLE_RATE, frame_length=1024)
        emotion = RAVDESS_EMOTIONS[_fields(path)["emotion"] - 1]
        rms = librosa.feature.rms(y=audio)[0]
        stats.setdefault(emotion, []).append((np.median(f0), len(audio) / SAMPLE_RATE, np.median(rms[rms > 0.01])))
    f0, seconds, loudness = ({e: np.mean([s[i] for s in v]) for e, v in stats.items()} for i in range(3))
    # Murray & Arnott: anger and fear are higher and faster than sadness; anger is louder; disgust is slowest.
    assert f0["angry"] > 1.15 * f0["sad"] and f0["fearful"] > 1.25 * f0["sad"]
    assert seconds["fearful"] < seconds["neutral"] < seconds["sad"] < seconds["disgust"]
    assert loudness["angry"] > 1.5 * loudness["sad"]


def test_two_processes_asking_at_once_get_one_complete_corpus(tmp_path):
    # The workers of a shared sweep, started together on a fresh machine: one synthesises, the other waits and reuses.
    out = tmp_path / "demo"
    make = ("import sys; from ser_hf.corpora.demo import synthesize_demo_corpus; "
            "synthesize_demo_corpus(sys.argv[1], seed=0, n_actors=1, workers=1)")
    procs = [subprocess.Popen([sys.executable, "-c", make, str(out)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert len(list(out.glob("Actor_01/*.wav"))) == 60 and not list(out.glob("Actor_01/.*.tmp"))
    assert json.loads((out / MARKER_NAME).read_text())["complete"]

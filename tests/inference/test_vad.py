"""Voice activity (silero-vad): no speech in silence and noise, speech where espeak-ng spoke, and what predict and the
timeline make of it: "no speech detected" instead of an emotion, and the pipeline's own scores for speech.

The speech is the demo corpus' synthesis (espeak-ng, 16 kHz, trimmed to 50 ms around the words); the model is
`tone_model` (tests/conftest.py), whose scores on speech are whatever they are: what is checked is that predict
gives exactly the pipeline's.
"""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ser_hf.commands import predict
from ser_hf.corpora import demo as demo_corpus
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.classify import classify_files, is_no_speech
from ser_hf.inference.timeline import emotion_timeline, speech_windows
from ser_hf.inference.vad import NO_SPEECH, file_speech_segments, speech_segments
from ser_hf.inference.windows import decode_whole

# Speech boundaries within this many seconds of where the words are: silero-vad pads each region by 30 ms and reads
# 32 ms frames; espeak-ng's word onsets are soft.
TOLERANCE = 0.2


def write_speech(path, pad_seconds=(0.0, 0.0), actor=1, emotion=1, statement=1):
    """An espeak-ng utterance of the demo corpus (a RAVDESS statement, 16 kHz), with digital silence before and after.

    Returns:
        (path, (start, end) of the utterance in seconds).
    """
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is a test dependency: apt-get install -y espeak-ng"
    raw = path.with_name(f"raw_{path.name}")
    demo_corpus._synthesize_one(raw, demo_corpus._espeak_command(espeak, 0, actor, emotion, 1, statement, 1))
    words, _ = sf.read(raw, dtype="float32")
    before, after = (np.zeros(round(s * SAMPLE_RATE), dtype=np.float32) for s in pad_seconds)
    sf.write(path, np.concatenate([before, words, after]), SAMPLE_RATE, subtype="PCM_16")
    return path, (pad_seconds[0], pad_seconds[0] + len(words) / SAMPLE_RATE)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(path, (start, end)): an utterance alone, about 1.5-2 s."""
    return write_speech(tmp_path_factory.mktemp("speech") / "speech.wav")


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """(path, (start, end)): an utterance between 2 s of silence on each side."""
    return write_speech(tmp_path_factory.mktemp("padded") / "padded.wav", pad_seconds=(2.0, 2.0), actor=2)


@pytest.fixture(scope="module")
def silence(tmp_path_factory):
    path = tmp_path_factory.mktemp("silence") / "silence.wav"
    sf.write(path, np.zeros(3 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.mark.parametrize("kind", ["digital silence", "quiet hiss", "white noise", "loud white noise"])
def test_silence_and_noise_have_no_speech(kind):
    rng = np.random.default_rng(0)
    level = {"digital silence": 0.0, "quiet hiss": 0.003, "white noise": 0.1, "loud white noise": 0.5}[kind]
    assert speech_segments((level * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)) == []


def test_speech_is_found_where_it_was_spoken(speech):
    path, (start, end) = speech
    segments = speech_segments(decode_whole(path))
    assert segments and segments[0][0] <= start + TOLERANCE and segments[-1][1] >= end - TOLERANCE
    covered = sum(b - a for a, b in segments)
    assert covered >= 0.8 * (end - start)  # short pauses between words may split it, not swallow it


def test_silence_around_speech_is_left_out(padded):
    path, (start, end) = padded
    segments = speech_segments(decode_whole(path))
    assert abs(segments[0][0] - start) < TOLERANCE and abs(segments[-1][1] - end) < TOLERANCE


def test_a_file_read_block_by_block_gives_the_whole_arrays_segments(padded, tmp_path):
    # Blocks of 1.3 s: many of them, none a multiple of silero-vad's 32 ms frame, and a last one that decode_windows
    # moves back over the one before.
    path = tmp_path / "twice.wav"
    once = decode_whole(padded[0])
    sf.write(path, np.concatenate([once, once]), SAMPLE_RATE, subtype="FLOAT")
    whole = speech_segments(decode_whole(path))
    assert len(whole) >= 2 and file_speech_segments(path, 2 * len(once) / SAMPLE_RATE, block_seconds=1.3) == whole


def test_nan_audio_is_an_error_not_silence():
    samples = np.zeros(SAMPLE_RATE, dtype=np.float32)
    samples[100] = np.nan
    with pytest.raises(ValueError, match="non-finite audio: 1 NaN/Inf"):
        speech_segments(samples)


def test_the_detector_keeps_torchs_threads_and_needs_no_torchaudio():
    # silero_vad.model sets torch's threads to 1 when imported; silero-vad's file readers import torchaudio (not
    # installable here). Checked in a fresh process, where neither has been imported yet.
    probe = """
import importlib.abc, sys
tried = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        tried.append(name)
sys.meta_path.insert(0, Watch())
import numpy as np, torch
torch.set_num_threads(2)
from ser_hf.inference.vad import speech_segments
speech_segments(np.zeros(16000, dtype=np.float32))
print(torch.get_num_threads(), any(name.startswith("torchaudio") for name in tried))
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["2", "False"]


def test_predict_says_no_speech_for_silence_and_gives_speech_the_pipelines_scores(tone_model, classifier, speech,
                                                                                  silence, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert predict.main([str(tone_model), str(silence), str(speech[0]), "--top_k", "8", "--output", str(out)]) == 0
    printed = capsys.readouterr()
    assert any(line.split() == ["silence.wav", *NO_SPEECH.split()] for line in printed.out.splitlines())
    assert "1 of 2 files: no speech detected" in printed.err and "ERROR" not in printed.out
    with out.open() as handle:
        quiet, spoken = csv.DictReader(handle)
    assert (quiet["label"], quiet["score"], quiet["top_k"], quiet["error"]) == (NO_SPEECH, "", "", "")
    # Speech: the pipeline's scores (predict batches clips: equal up to float rounding).
    pipeline = {s["label"]: s["score"] for s in classifier(str(speech[0]), top_k=8)}
    shown = {label: float(score) for label, score in (item.split(":") for item in spoken["top_k"].split(";"))}
    assert spoken["label"] == max(pipeline, key=pipeline.get) and shown == pytest.approx(pipeline, abs=1e-4)
    # One file at a time, as the app classifies: exactly the pipeline's numbers.
    [row] = classify_files(classifier, [speech[0]], top_k=8, vad=True)
    assert dict(row["top_k"]) == pipeline


def test_vad_false_gives_the_models_answer_for_silence(tone_model, silence, tmp_path):
    out = tmp_path / "p.json"
    assert predict.main([str(tone_model), str(silence), "--output", str(out), "--vad", "false"]) == 0
    [row] = json.loads(out.read_text())
    assert row["label"] != NO_SPEECH and row["top_k"] and not is_no_speech(row)


def test_speech_windows_cover_the_regions_and_the_gaps_between():
    placed = speech_windows([(0.5, 1.2), (3.0, 6.5)], 8.0, window_seconds=2.0, overlap_seconds=1.0)
    assert placed == [(0.0, 0.5, False), (0.5, 1.2, True), (1.2, 3.0, False),
                      (3.0, 5.0, True), (4.0, 6.0, True), (4.5, 6.5, True), (6.5, 8.0, False)]


def test_the_timeline_puts_windows_on_speech_and_no_speech_between(classifier, padded):
    path, (start, end) = padded
    timeline = emotion_timeline(classifier, path, window_seconds=1.0, overlap_seconds=0.5, vad=True)
    windows = timeline["windows"]
    assert timeline["error"] is None and timeline["vad"] is True
    first, last = windows[0], windows[-1]
    assert first["label"] == last["label"] == NO_SPEECH and first["scores"] is None and last["scores"] is None
    assert first["start"] == 0.0 and abs(first["end"] - start) < TOLERANCE
    assert abs(last["start"] - end) < TOLERANCE and last["end"] == timeline["seconds"]
    spoken = [w for w in windows if w["label"] != NO_SPEECH]
    assert spoken and all(w["scores"] and start - TOLERANCE <= w["start"] < w["end"] <= end + TOLERANCE
                          for w in spoken)
    assert all(a["start"] <= b["start"] for a, b in zip(windows, windows[1:]))


def test_a_file_without_speech_is_one_no_speech_row_in_its_timeline(tone_model, silence, tmp_path, capsys):
    assert predict.main([str(tone_model), str(silence), "--timeline", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "silence_timeline.json").read_text())
    assert [(w["start"], w["end"], w["label"], w["scores"]) for w in saved["windows"]] == [(0.0, 3.0, NO_SPEECH, None)]
    assert (tmp_path / "silence_timeline.png").is_file()

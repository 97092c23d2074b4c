"""Inference on hostile inputs: every file gets a prediction or a clear error, and a batch job never crashes.

One tiny random model and one set of generated files serve the whole module; the 10-minute file is written
block by block so that generating it does not itself hold the whole waveform. The files are tones, in which the
voice-activity detector rightly finds no speech: predict runs here with `--vad false`, the model on every file (the
detector's own tests: tests/inference/test_vad.py).
"""

import contextlib
import csv
import ctypes
import ctypes.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.commands import predict
from ser_hf.config import ModelArguments
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.classify import (
    MIN_SAMPLES,
    classify_files,
    collect_audio_files,
    is_no_speech,
    load_classifier,
    min_input_samples,
)
from ser_hf.inference.vad import file_speech_segments
from ser_hf.inference.windows import chunk_starts
from ser_hf.labels import RAVDESS_EMOTIONS, label_maps
from ser_hf.models.encoders import build_model
from tests.conftest import TINY_ENCODER, tone

LONG_SECONDS = 600
# Windows of 10 s every 5 s: starts 0, 5, ..., 590 s, the last one ending exactly at 600 s.
LONG_CHUNKS = 119


@pytest.fixture(scope="module")
def classifier_model(tmp_path_factory):
    """A tiny random wav2vec2 with the 8 RAVDESS emotions: the model of conftest's `classifier` in this module."""
    out = tmp_path_factory.mktemp("model")
    id2label, label2id = label_maps(RAVDESS_EMOTIONS)
    args = ModelArguments(model_name_or_path=None, model_type="wav2vec2", model_config_overrides=dict(TINY_ENCODER))
    model, feature_extractor = build_model(args, id2label, label2id)
    model.save_pretrained(out)
    feature_extractor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """name -> path of each generated input; all live in one folder (with a .txt that must be skipped)."""
    d = tmp_path_factory.mktemp("inputs")
    files = {}

    def write(name, data, sr, **kw):
        files[name] = d / name
        sf.write(files[name], data, sr, **kw)

    write("normal.wav", tone(1.0, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    write("short.wav", tone(300 / SAMPLE_RATE, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    write("min_length.wav", tone(MIN_SAMPLES / SAMPLE_RATE, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    nan = tone(1.0, SAMPLE_RATE).astype(np.float32)
    nan[[100, 5000]] = [np.nan, np.inf]
    write("nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    stereo = tone(1.0, 44_100)  # two unequal channels
    write("stereo_44k.wav", np.stack([stereo, 0.5 * stereo[::-1]], axis=1), 44_100, subtype="PCM_16")
    write("rate_8k.wav", tone(1.0, 8_000), 8_000, subtype="PCM_16")
    write("rate_48k.wav", tone(1.0, 48_000), 48_000, subtype="PCM_16")
    write("medium_27s.wav", tone(27.0, SAMPLE_RATE, freq=330.0), SAMPLE_RATE, subtype="PCM_16")
    files["long_10min.wav"] = d / "long_10min.wav"
    with sf.SoundFile(files["long_10min.wav"], "w", SAMPLE_RATE, 1, subtype="PCM_16") as handle:
        for minute in range(LONG_SECONDS // 60):
            handle.write(tone(60.0, SAMPLE_RATE, seed=minute, freq=200.0 + 20 * minute))
    files["text.wav"] = d / "text.wav"
    files["text.wav"].write_text("this is not audio\n")
    files["corrupt.wav"] = d / "corrupt.wav"  # a RIFF/WAVE header followed by garbage
    files["corrupt.wav"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    (d / "notes.txt").write_text("not audio, and not named like audio\n")
    return files


def _one(classifier, path, **kw):
    (row,) = classify_files(classifier, [path], top_k=3, **kw)
    return row


def test_min_input_samples():
    from transformers import Wav2Vec2Config, WhisperConfig

    assert min_input_samples(Wav2Vec2Config()) == 400  # wav2vec2-base's receptive field, computed
    assert min_input_samples(Wav2Vec2Config(**{k: TINY_ENCODER[k] for k in ("conv_dim", "conv_stride", "conv_kernel")})) == MIN_SAMPLES
    assert min_input_samples(Wav2Vec2Config(conv_kernel=[400, 3], conv_stride=[5, 2], conv_dim=[8, 8])) == 400 + 2 * 5
    assert min_input_samples(WhisperConfig()) == MIN_SAMPLES


def test_chunk_starts():
    assert chunk_starts(100, 160, 80) == [0]
    assert chunk_starts(160, 160, 80) == [0]
    assert chunk_starts(400, 160, 80) == [0, 80, 160, 240]
    assert chunk_starts(432, 160, 80) == [0, 80, 160, 240, 272]  # the last window ends at the end
    assert len(chunk_starts(LONG_SECONDS * SAMPLE_RATE, 10 * SAMPLE_RATE, 5 * SAMPLE_RATE)) == LONG_CHUNKS


def test_normal_clip_equals_pipeline(classifier, inputs):
    row = _one(classifier, inputs["normal.wav"])
    expected = classifier(str(inputs["normal.wav"]), top_k=3)
    assert row["error"] is None and row["chunks"] == 1
    assert row["top_k"] == [(s["label"], s["score"]) for s in expected]
    assert (row["label"], row["score"]) == (expected[0]["label"], expected[0]["score"])


@pytest.mark.parametrize("name", ["stereo_44k.wav", "rate_8k.wav", "rate_48k.wav", "min_length.wav"])
def test_other_rates_channels_and_min_length_are_classified(classifier, inputs, name):
    row = _one(classifier, inputs[name])
    assert row["error"] is None and row["label"] in RAVDESS_EMOTIONS
    assert row["top_k"] == [(s["label"], s["score"]) for s in classifier(str(inputs[name]), top_k=3)]


def test_chunk_decoding_matches_pipeline_ffmpeg(inputs):
    # The chunked path decodes with torchcodec; a whole-file decode must give the samples the pipeline's ffmpeg gives
    # (stereo downmix and resampling included), or chunked and single-pass results would disagree.
    from torchcodec.decoders import AudioDecoder
    from transformers.pipelines.audio_utils import ffmpeg_read

    for name in ("stereo_44k.wav", "rate_8k.wav", "normal.wav"):
        ours = AudioDecoder(str(inputs[name]), sample_rate=SAMPLE_RATE, num_channels=1).get_all_samples().data.numpy()[0]
        theirs = ffmpeg_read(inputs[name].read_bytes(), SAMPLE_RATE)
        np.testing.assert_array_equal(ours, theirs)


def test_short_clip_is_an_error_not_a_crash(classifier, inputs):
    row = _one(classifier, inputs["short.wav"])
    assert row["error"] == "too short (300 samples at 16 kHz, the model needs at least 400)"
    assert row["label"] is None and row["top_k"] == []


def test_nan_audio_is_an_error_naming_it(classifier, inputs):
    row = _one(classifier, inputs["nan.wav"])
    assert row["label"] is None
    assert "non-finite" in row["error"] and "2 NaN/Inf samples" in row["error"]


def test_nan_in_a_long_file_names_the_window(classifier, tmp_path):
    data = tone(25.0, SAMPLE_RATE).astype(np.float32)
    data[int(17.5 * SAMPLE_RATE)] = np.nan
    sf.write(tmp_path / "long_nan.wav", data, SAMPLE_RATE, subtype="FLOAT")
    row = _one(classifier, tmp_path / "long_nan.wav")
    assert row["label"] is None and "1 NaN/Inf samples in 10.0-20.0 s" in row["error"]


@pytest.mark.parametrize("name", ["text.wav", "corrupt.wav"])
def test_undecodable_file_gives_the_decoder_message(classifier, inputs, name):
    row = _one(classifier, inputs[name])
    assert row["label"] is None
    assert row["error"].startswith("unreadable: ") and "Invalid data found" in row["error"]
    assert ".cpp:" not in row["error"]  # torchcodec's source location is noise to a user


def test_missing_file_is_an_error_row(classifier, tmp_path):
    files = collect_audio_files([tmp_path / "nope.wav"])
    assert _one(classifier, files[0])["error"] == "no such file or folder"


def test_chunked_average_of_window_probabilities(classifier, inputs):
    path = inputs["medium_27s.wav"]
    row = _one(classifier, path)
    # Windows start at 0, 5, 10, 15 and (moved back to end at 27 s) 17 s.
    audio = sf.read(path, dtype="float32")[0]
    sums = {}
    for start in (0, 5, 10, 15, 17):
        window = audio[start * SAMPLE_RATE : (start + 10) * SAMPLE_RATE]
        for s in classifier({"raw": window, "sampling_rate": SAMPLE_RATE}, top_k=None):
            sums[s["label"]] = sums.get(s["label"], 0.0) + s["score"] / 5
    expected = sorted(sums.items(), key=lambda kv: kv[1], reverse=True)[:3]
    assert row["chunks"] == 5 and row["seconds"] == 27.0
    assert [label for label, _ in row["top_k"]] == [label for label, _ in expected]
    np.testing.assert_allclose([s for _, s in row["top_k"]], [s for _, s in expected], rtol=1e-6)
    # A shorter clip than chunk_seconds goes through one pass; so does this one with a longer window.
    assert _one(classifier, path, chunk_seconds=30.0, chunk_overlap=5.0)["chunks"] == 1


def test_windows_hop_by_chunk_minus_overlap(classifier, tmp_path):
    # 10 s windows with 5 s overlap cannot tell hop = chunk - overlap from hop = overlap: 4 s windows with
    # 1 s overlap can (hop 3 s). Each second has its own pitch so that every window sees different audio.
    path = tmp_path / "eleven_seconds.wav"
    audio = np.concatenate([tone(1.0, SAMPLE_RATE, seed=i, freq=150.0 + 60 * i) for i in range(11)]).astype(np.float32)
    sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    row = _one(classifier, path, chunk_seconds=4.0, chunk_overlap=1.0)
    # Starts every 3 s (0, 3, 6), then the last window moved back to end at 11 s: 7.
    starts = (0, 3, 6, 7)
    assert chunk_starts(11 * SAMPLE_RATE, 4 * SAMPLE_RATE, 3 * SAMPLE_RATE) == [s * SAMPLE_RATE for s in starts]
    sums = {}
    for start in starts:
        window = audio[start * SAMPLE_RATE : (start + 4) * SAMPLE_RATE]
        for s in classifier({"raw": window, "sampling_rate": SAMPLE_RATE}, top_k=None):
            sums[s["label"]] = sums.get(s["label"], 0.0) + s["score"] / len(starts)
    expected = sorted(sums.items(), key=lambda kv: kv[1], reverse=True)[:3]
    assert row["error"] is None and row["chunks"] == len(starts) and row["seconds"] == 11.0
    assert [label for label, _ in row["top_k"]] == [label for label, _ in expected]
    np.testing.assert_allclose([s for _, s in row["top_k"]], [s for _, s in expected], rtol=1e-6)


def _rss_mb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _release_free_memory():
    """Give memory freed earlier but still resident back to the kernel (glibc's malloc_trim): otherwise a large
    allocation can reuse it without raising RSS, and the peak would not show it."""
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def _reset_peak_rss():
    """Reset this process's peak RSS (VmHWM) to its current RSS; returns the RSS in MB.

    Raises:
        OSError, KeyError: the kernel offers no peak reset (not Linux, /proc/self/clear_refs not writable,
            no VmHWM); RuntimeError: the write was accepted but left the peak where it was (kernel < 4.0).
    """
    Path("/proc/self/clear_refs").write_text("5")
    rss, peak = _rss_mb("VmRSS"), _rss_mb("VmHWM")
    if peak - rss > 1:
        raise RuntimeError(f"writing 5 to /proc/self/clear_refs left VmHWM at {peak:.0f} MB, RSS is {rss:.0f} MB")
    return rss


@pytest.fixture(scope="module")
def whole_set(classifier, classifier_model, inputs, tmp_path_factory):
    """predict.py main() once on the whole folder (plus the non-audio .wav named explicitly a second time).

    The 10-minute file is the slow part, so this one run serves every test about it. Returns the exit code,
    the printed table, the CSV rows, and how far the run raised this process's peak RSS in MB, or, where
    the peak cannot be reset, the reason as a string.
    """
    _release_free_memory()
    classify_files(classifier, [inputs["medium_27s.wav"]])  # warm-up: one window's buffers are allocated
    out_csv = tmp_path_factory.mktemp("preds") / "preds.csv"
    args = [str(classifier_model), str(inputs["normal.wav"].parent), str(inputs["text.wav"]), "--top_k", "2",
            "--vad", "false"]
    try:
        before = _reset_peak_rss()  # so the peak read after is this run's own
    except (OSError, KeyError, RuntimeError) as err:
        before = f"cannot reset the peak RSS here ({type(err).__name__}: {err})"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = predict.main(args + ["--output", str(out_csv)])
    peak_delta = before if isinstance(before, str) else _rss_mb("VmHWM") - before
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    return code, printed.getvalue(), rows, peak_delta


def test_ten_minute_file_is_chunked(whole_set):
    (row,) = [r for r in whole_set[2] if Path(r["path"]).name == "long_10min.wav"]
    assert not row["error"] and row["label"] in RAVDESS_EMOTIONS
    assert int(row["chunks"]) == LONG_CHUNKS and float(row["seconds"]) == LONG_SECONDS
    assert 0 < float(row["score"]) <= 1 and len(row["top_k"].split(";")) == 2


def test_ten_minute_file_memory_is_bounded(whole_set):
    # The whole waveform would be 9.6 M samples (38 MB as float32); the pipeline given the path holds the
    # bytes, the float32 array and a normalised copy (about +210 MB measured). Windows need about 1-5 MB.
    peak_delta_mb = whole_set[3]
    if isinstance(peak_delta_mb, str):
        pytest.skip(f"memory bound not measured: {peak_delta_mb}")
    print(f"peak RSS rise for the whole set with the 10-minute file: {peak_delta_mb:.1f} MB")
    assert peak_delta_mb < 15
    # The same measurement sees a whole-waveform-sized allocation, so the bound above is not vacuous.
    _release_free_memory()
    before = _reset_peak_rss()
    waveform = np.ones(LONG_SECONDS * SAMPLE_RATE, dtype=np.float32)
    assert _rss_mb("VmHWM") - before > 0.9 * waveform.nbytes / 2**20


def test_ten_minute_file_without_speech_is_answered_in_bounded_memory(classifier, inputs):
    # The voice-activity detector reads a long file block by block too, and a file it finds no speech in (a tone)
    # never reaches the model: one row, no windows classified, memory about one 60 s block.
    # The detector loaded and the decoder's first windowed read done before the measurement, as in `whole_set`.
    file_speech_segments(inputs["medium_27s.wav"], 27.0)
    _release_free_memory()
    try:
        before = _reset_peak_rss()
    except (OSError, KeyError, RuntimeError) as err:
        pytest.skip(f"memory bound not measured: cannot reset the peak RSS here ({type(err).__name__}: {err})")
    [row] = classify_files(classifier, [inputs["long_10min.wav"]], vad=True)
    peak_delta_mb = _rss_mb("VmHWM") - before
    print(f"peak RSS rise for the detector over the 10-minute file: {peak_delta_mb:.1f} MB")
    assert is_no_speech(row) and row["seconds"] == LONG_SECONDS and row["chunks"] == 0
    assert peak_delta_mb < 15  # the whole waveform alone would be 38 MB


def test_bad_chunk_settings_are_refused(classifier, inputs):
    with pytest.raises(ValueError, match="chunk_overlap"):
        classify_files(classifier, [inputs["normal.wav"]], chunk_seconds=5.0, chunk_overlap=5.0)
    # Less than one sample apart: the hop would round to 0 and the windows never advance.
    with pytest.raises(ValueError, match="one sample apart"):
        classify_files(classifier, [inputs["normal.wav"]], chunk_seconds=5.0, chunk_overlap=5.0 - 1e-5)


def test_predict_main_runs_the_whole_set(whole_set, classifier_model, inputs, tmp_path):
    code, printed, rows, _ = whole_set
    assert code == 1  # some files failed: a script must notice, though every good file got its prediction
    by_name = {}
    for row in rows:
        by_name.setdefault(Path(row["path"]).name, []).append(row)
    assert "notes.txt" not in by_name
    assert set(by_name) == set(inputs)
    assert len(by_name["text.wav"]) == 2
    bad = {"short.wav", "nan.wav", "text.wav", "corrupt.wav"}
    for name, found in by_name.items():
        for row in found:
            assert bool(row["error"]) == (name in bad), (name, row)
            if name not in bad:
                assert row["label"] in RAVDESS_EMOTIONS and len(row["top_k"].split(";")) == 2
    assert by_name["short.wav"][0]["error"].startswith("too short (300 samples")
    assert "NaN/Inf" in by_name["nan.wav"][0]["error"]
    assert "ERROR: too short" in printed and f"{LONG_CHUNKS} windows" in printed

    # JSON keeps the error rows too (a subset: the 10-minute file was covered above).
    out_json = tmp_path / "preds.json"
    subset = [str(inputs[name]) for name in ("normal.wav", "short.wav", "nan.wav", "corrupt.wav")]
    assert predict.main([str(classifier_model), *subset, "--output", str(out_json), "--vad", "false"]) == 1
    rows = json.loads(out_json.read_text())
    assert [Path(r["path"]).name for r in rows] == ["normal.wav", "short.wav", "nan.wav", "corrupt.wav"]
    assert [r["error"] is None for r in rows] == [True, False, False, False]
    assert rows[0]["top_k"] and rows[1]["label"] is None and rows[1]["chunks"] == 0


def test_predict_main_exit_code_says_whether_every_file_was_classified(classifier_model, inputs, capsys):
    assert predict.main([str(classifier_model), str(inputs["normal.wav"])]) == 0
    assert predict.main([str(classifier_model), str(inputs["normal.wav"]), str(inputs["short.wav"])]) == 1
    captured = capsys.readouterr()
    assert "1 of 2 files could not be classified" in captured.err
    assert (captured.out + captured.err).count("too short (300 samples") == 1  # said once, in its row


@pytest.fixture(scope="module", params=["group", "layer"])
def any_classifier(request, tmp_path_factory):
    """A tiny model without an attention mask (group norm, as wav2vec2-base) and one with (layer norm)."""
    out = tmp_path_factory.mktemp(f"model_{request.param}")
    id2label, label2id = label_maps(RAVDESS_EMOTIONS)
    overrides = dict(TINY_ENCODER, feat_extract_norm=request.param)
    model, feature_extractor = build_model(ModelArguments(model_name_or_path=None, model_type="wav2vec2",
                                                          model_config_overrides=overrides), id2label, label2id)
    model.save_pretrained(out)
    feature_extractor.save_pretrained(out)
    return load_classifier(out, device="cpu")


def test_batched_classification_gives_the_pipelines_rows(any_classifier, inputs, tmp_path):
    # Clips of many lengths (two of the same length), every error kind, other rates and a chunked 27 s file.
    lengths = [0.5, 1.3, 0.8, 1.3, 2.1, 0.9]
    clips = [tmp_path / f"clip{i}.wav" for i in range(len(lengths))]
    for i, (path, seconds) in enumerate(zip(clips, lengths)):
        sf.write(path, tone(seconds, SAMPLE_RATE, seed=i, freq=150.0 + 40 * i), SAMPLE_RATE, subtype="PCM_16")
    files = clips + [inputs[n] for n in inputs if n != "long_10min.wav"] + [tmp_path / "missing.wav"]
    one_by_one = classify_files(any_classifier, files, top_k=8)  # the pipeline itself, file by file
    batched = classify_files(any_classifier, files, top_k=8, batch_size=4)
    assert [(r["path"], r["label"], r["error"], r["chunks"]) for r in batched] == \
        [(r["path"], r["label"], r["error"], r["chunks"]) for r in one_by_one]
    for b, p in zip(batched, one_by_one):
        assert dict(b["top_k"]) == pytest.approx(dict(p["top_k"]), abs=1e-5)
        assert b["seconds"] == pytest.approx(p["seconds"], abs=1e-3) if p["seconds"] else b["seconds"] == p["seconds"]


def test_loading_the_classifier_draws_no_progress_bar_over_the_table(classifier_model, capfd, monkeypatch):
    # transformers' "Loading weights" bar goes to stderr above predict's table; SER_HF_VERBOSE=1 keeps it.
    import transformers

    capfd.readouterr()
    load_classifier(classifier_model)
    assert "Loading weights" not in capfd.readouterr().err
    assert transformers.utils.logging.is_progress_bar_enabled()  # put back for whatever runs next
    monkeypatch.setenv("SER_HF_VERBOSE", "1")
    load_classifier(classifier_model)
    assert "Loading weights" in capfd.readouterr().err

"""The app's logic without a browser: what it shows for a file, its examples, the command's refusals.

The generated "voices" (`emotion_tone`) are tones, which the voice-activity detector rightly finds no speech in:
tests about the emotion shown pass `vad=False`; tests/app/test_app_limits.py covers the detector in the app.
"""

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from ser_hf.app.demo_app import analyse_file, build_app
from ser_hf.app.examples import demo_examples, example_label, long_example
from ser_hf.app.limits import CACHE_SECONDS, MAX_UPLOAD_MB, cache_schedule, upload_bytes
from ser_hf.commands import app as app_command
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.classify import classify_files
from ser_hf.labels import RAVDESS_EMOTIONS
from tests.conftest import BAD_AUDIO, emotion_tone, write_bad_audio, write_run_record


def _wav(path, *parts):
    sf.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path


def test_a_clip_shows_what_predict_gives(classifier, tmp_path):
    clip = _wav(tmp_path / "angry.wav", emotion_tone("angry", 1.5, seed=11))
    shown = analyse_file(classifier, clip, tmp_path, top_k=3, vad=False)
    [row] = classify_files(classifier, [clip], top_k=3, batch_size=16)  # predict.py's defaults (--vad false)
    assert row["label"] == "angry" and shown["message"].startswith(f"Top emotion: **{row['label']}**")
    assert list(shown["scores"]) == [label for label, _ in row["top_k"]]
    assert shown["windows"] == [] and imread(shown["image"]).shape[1] > 500  # the waveform alone


def test_a_long_file_gets_its_timeline(classifier, tmp_path):
    path = _wav(tmp_path / "two.wav", emotion_tone("sad", 4.0, seed=12), emotion_tone("angry", 4.0, seed=13))
    shown = analyse_file(classifier, path, tmp_path, window_seconds=2.0, overlap_seconds=1.0, vad=False)
    assert [w[:2] for w in shown["windows"]] == [[float(s), float(s + 2)] for s in range(7)]
    assert shown["windows"][0][2] == "sad" and shown["windows"][-1][2] == "angry"
    assert (tmp_path / "two_timeline.png").is_file() and shown["image"] == str(tmp_path / "two_timeline.png")


@pytest.mark.parametrize("name, content, reason", BAD_AUDIO)
def test_bad_input_shows_predicts_error_without_a_traceback(classifier, tmp_path, name, content, reason):
    bad = write_bad_audio(tmp_path / name, content)
    shown = analyse_file(classifier, bad, tmp_path)
    [row] = classify_files(classifier, [bad])
    assert row["error"].startswith(reason)
    # The same reason, naming the file rather than the server's upload folder.
    assert shown["message"] == f"**Cannot classify {name}**: {row['error'].replace(str(bad), name)}"
    assert str(tmp_path) not in shown["message"] and shown["scores"] is None and shown["image"] is None


def test_the_blocks_wire_one_handler_with_analytics_off(classifier, tmp_path):
    import gradio as gr

    clip = _wav(tmp_path / "sad.wav", emotion_tone("sad", 1.0, seed=14))
    demo = build_app(classifier, examples=[clip], top_k=2, vad=False)
    assert isinstance(demo, gr.Blocks) and demo.analytics_enabled is False
    [handler] = [fn for fn in demo.fns.values() if fn.name == "run"]
    message, scores, image, table = handler.fn(str(clip))
    assert message.startswith("Top emotion: **sad**") and len(scores) == 2 and table["visible"] is False
    assert image.size[0] > 500  # the waveform, in memory: the request's own folder is already gone
    # Gradio's copies of uploads and outputs expire, looked for every minute.
    assert demo.delete_cache == cache_schedule(CACHE_SECONDS) == (60, CACHE_SECONDS)


def _demo_tree(root):
    for actor in (23, 24):
        (root / f"Actor_{actor}").mkdir(parents=True)
        for code in range(1, len(RAVDESS_EMOTIONS) + 1):
            _wav(root / f"Actor_{actor}" / f"03-01-{code:02d}-01-01-01-{actor}.wav", emotion_tone("sad", 0.5))
    return root


def test_examples_are_held_out_clips_one_per_emotion(tmp_path):
    corpus = _demo_tree(tmp_path / "demo")
    # No run record: one clip per emotion of actor 24.
    assert [example_label(p) for p in demo_examples(tmp_path / "no_run", data_dir=corpus)] == \
        [f"{e} (Actor_24)" for e in RAVDESS_EMOTIONS]
    run = write_run_record(tmp_path / "run", corpus, [
        ["Actor_23/03-01-05-01-01-01-23.wav", "Actor_23", "angry", "sad", "0.5"],
        ["Actor_24/03-01-05-01-01-01-24.wav", "Actor_24", "angry", "angry", "0.9"],
        ["Actor_23/missing.wav", "Actor_23", "calm", "calm", "0.9"],
        ["Actor_24/03-01-01-01-01-01-24.wav", "Actor_24", "neutral", "calm", "0.4"]])
    assert demo_examples(run) == [corpus / "Actor_24/03-01-01-01-01-01-24.wav", corpus / "Actor_23/03-01-05-01-01-01-23.wav"]
    joined = long_example(demo_examples(run), tmp_path / "long.wav", pause_seconds=0.5)
    assert sf.info(joined).frames == 3 * SAMPLE_RATE // 2


@pytest.mark.parametrize("argv, message", [
    (["no/such/model_dir"], "no such model folder"),
    (["{tmp}"], "has no config.json"),
    (["{model}", "--export_space", "{tmp}/space"], "--export_space needs the model's Hub id"),
    (["nobody/no-such-model", "--examples", "none"], "nobody/no-such-model: cannot load the model"),  # offline
])
def test_the_command_refuses_in_one_line(tone_model, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, model=tone_model) for a in argv]
    assert app_command.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_command_refuses_a_timeline_window_that_cannot_advance(tone_model, capsys):
    assert app_command.main([str(tone_model), "--timeline_seconds", "1", "--timeline_overlap", "1"]) == 2
    err = capsys.readouterr().err
    assert "--timeline_seconds/--timeline_overlap" in err and len(err.strip().splitlines()) == 1


def test_the_command_serves_the_app_on_loopback(tone_model, monkeypatch, capsys):
    import gradio as gr

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, blocks=self))
    assert app_command.main([str(tone_model), "--port", "7999", "--examples", "none"]) == 0
    assert (launched["server_name"], launched["server_port"], launched["share"]) == ("127.0.0.1", 7999, False)
    assert launched["blocks"].analytics_enabled is False
    # The limits a public server needs: an upload size, a bounded queue running one request at a time.
    assert launched["max_file_size"] == upload_bytes(MAX_UPLOAD_MB) == 25 * 2**20
    assert (launched["blocks"]._queue.max_size, launched["blocks"]._queue.default_concurrency_limit) == (16, 1)
    # Gradio's own advice is for Python users ("set `share=True` in `launch()`"): ours names our flag.
    assert launched["quiet"] is True and "add --share true" in capsys.readouterr().out
    assert app_command.main([str(tone_model), "--examples", "none", "--host", "0.0.0.0", "--share", "true"]) == 0
    assert (launched["server_name"], launched["server_port"], launched["share"]) == ("0.0.0.0", None, True)


def test_the_command_refuses_int8_without_the_onnx_backend(tone_model, capsys):
    assert app_command.main([str(tone_model), "--int8"]) == 2
    err = capsys.readouterr().err
    assert "--backend onnx" in err and len(err.strip().splitlines()) == 1

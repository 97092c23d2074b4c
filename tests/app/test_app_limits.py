"""The app as a public Space meets it: anyone uploads anything, many at once.

Checked on the real app served on 127.0.0.1 (in this process, small limits): a long recording is refused in one line
before it is decoded, a large upload is refused, files outside the upload folders cannot be read through Gradio's
file routes nor passed to the handler, 20 clients at once each get their own file's answer or the queue's "full",
the server survives, and no file of a request is left behind. Speech is espeak-ng's (tests/inference/test_vad.py).
"""

import concurrent.futures
import json
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.app.demo_app import analyse_file, build_app
from ser_hf.app.limits import duration_refusal, upload_bytes
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.classify import classify_file
from tests.inference.test_classify import _reset_peak_rss, _rss_mb
from tests.inference.test_vad import write_speech

MAX_UPLOAD_MB = 0.5
QUEUE_SIZE = 3


def _long_silent_wav(path, seconds):
    """A 16-bit 16 kHz WAV of `seconds` of digital silence, written as a sparse file: instant, no disk used."""
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as handle:
        handle.write(np.zeros(SAMPLE_RATE, dtype=np.int16))
    size = path.stat().st_size - 2 * SAMPLE_RATE + 2 * round(seconds * SAMPLE_RATE)
    header = bytearray(path.read_bytes()[:44])
    header[4:8] = (size - 8).to_bytes(4, "little")  # RIFF size
    header[40:44] = (size - 44).to_bytes(4, "little")  # data size
    with path.open("r+b") as handle:
        handle.write(header)
        handle.truncate(size)
    return path


def test_a_two_hour_file_is_refused_in_one_line_before_decoding(classifier, tmp_path):
    path = _long_silent_wav(tmp_path / "meeting.wav", 2 * 3600)
    assert sf.info(path).duration == 7200
    try:
        before = _reset_peak_rss()
    except (OSError, KeyError, RuntimeError):
        before = None  # the refusal is still checked; its memory only where the kernel can reset the peak
    shown = analyse_file(classifier, path, tmp_path, max_duration_s=60)
    if before is not None:  # decoding it would take 460 MB of float32 samples (and the pipeline a few copies)
        assert _rss_mb("VmHWM") - before < 50
    assert shown["message"] == ("**meeting.wav is too long**: this recording is 2 h 0 min long; this app takes up to "
                                "60 s (`ser-hf app MODEL --max_duration_s SECONDS` serves longer ones)")
    assert shown["scores"] is None and shown["row"] is None and "\n" not in shown["message"]


def test_a_recording_within_the_limit_and_a_broken_file_pass_the_length_check(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert duration_refusal(short, 60) is None and duration_refusal(empty, 60) is None
    assert "is 1 min 1 s long" in duration_refusal(_long_silent_wav(tmp_path / "a.wav", 61), 60)


@pytest.mark.parametrize("name, content", [("notes.wav", b"minutes of the meeting, not audio"), ("empty.wav", b""),
                                           ("fake.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))])
def test_a_hostile_upload_gets_a_clear_message(classifier, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    shown = analyse_file(classifier, path, tmp_path, max_duration_s=60)
    assert shown["message"].startswith(f"**Cannot classify {name}**: ") and "\n" not in shown["message"]
    assert str(tmp_path) not in shown["message"] and shown["scores"] is None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(classifier, classifier_model, tmp_path_factory):
    """The app on 127.0.0.1 with small limits (0.5 MB uploads, 5 s recordings, 3 waiting requests, 1 running), uploads
    in a folder of its own. Returns (URL, upload folder)."""
    uploads = tmp_path_factory.mktemp("gradio_uploads")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(uploads))
        demo = build_app(classifier, max_duration_s=5, queue_size=QUEUE_SIZE, concurrency=1)
        demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True,
                    max_file_size=upload_bytes(MAX_UPLOAD_MB))
        try:
            yield demo.local_url.rstrip("/"), uploads
        finally:
            demo.close()


def _status(url, data=None, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_an_upload_over_the_limit_is_refused(served):
    url, _ = served
    boundary = "ser-hf-test"
    big = b"\0" * upload_bytes(MAX_UPLOAD_MB * 2)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
    status, answer = _status(f"{url}/gradio_api/upload", body,
                             {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 413 and b"size" in answer.lower()


def test_files_outside_the_upload_folders_cannot_be_read(served, classifier_model):
    url, _ = served
    secrets = ["/etc/passwd", str(Path(classifier_model) / "config.json")]
    for path in secrets:
        for route in (f"/gradio_api/file={path}", f"/gradio_api/file/{path.lstrip('/')}", f"/file={path}"):
            status, answer = _status(url + route)
            assert status in (403, 404) and b"root:" not in answer and b"id2label" not in answer, (route, status)
    # Nor handed to the app's function as an "uploaded" file.
    body = json.dumps({"data": [{"path": secrets[1], "meta": {"_type": "gradio.FileData"}}]}).encode()
    status, answer = _status(f"{url}/gradio_api/call/run", body, {"Content-Type": "application/json"})
    assert status == 200
    _, events = _status(f"{url}/gradio_api/call/run/{json.loads(answer)['event_id']}")
    assert b"event: error" in events and b"id2label" not in events and b"Top emotion" not in events


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """20 different spoken clips: two utterances, each with 10 lengths of silence after it."""
    folder = tmp_path_factory.mktemp("voices")
    clips = []
    for actor in (1, 2):
        spoken, _ = write_speech(folder / f"actor{actor}.wav", actor=actor)
        words, _ = sf.read(spoken, dtype="float32")
        for k in range(10):
            clip = folder / f"voice_{actor}_{k}.wav"
            sf.write(clip, np.concatenate([words, np.zeros(k * 800, dtype=np.float32)]), SAMPLE_RATE)
            clips.append(clip)
    return clips


def _ask(url, clip):
    from gradio_client import Client, handle_file

    try:
        message, scores, _, _ = Client(url, verbose=False).predict(handle_file(str(clip)), api_name="/run")
    except Exception as err:  # noqa: BLE001 - what a client is told: the queue is full, or a crash
        return clip, None, str(err)
    # gr.Label's value: the top label and each class's confidence.
    return clip, message, {c["label"]: c["confidence"] for c in scores["confidences"]}


@pytest.mark.slow
def test_twenty_clients_at_once_get_their_own_answers_or_busy(served, voices, classifier):
    url, uploads = served
    ours_before = set(Path(tempfile.gettempdir()).glob("ser_hf_app_*"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(voices)) as pool:
        answers = list(pool.map(lambda clip: _ask(url, clip), voices))
    answered = [a for a in answers if a[1] is not None]
    busy = [a for a in answers if a[1] is None]
    assert all("queue is full" in error.lower() for _, _, error in busy), busy[:3]
    assert len(answered) >= QUEUE_SIZE and busy  # some waited their turn, some were told the queue is full
    for clip, message, scores in answered:
        row = classify_file(classifier, clip, top_k=3, vad=True)  # this clip's own answer, not a neighbour's
        assert message.startswith(f"Top emotion: **{row['label']}**")
        assert scores == pytest.approx(dict(row["top_k"]), abs=1e-6)
    # The server is still up and answers the next client.
    assert _ask(url, voices[0])[1].startswith("Top emotion")
    # Nothing of an answered request is left: its own folder, its upload.
    assert set(Path(tempfile.gettempdir()).glob("ser_hf_app_*")) <= ours_before
    left = {p.name for p in uploads.rglob("*.wav")}
    assert not left & {clip.name for clip, _, _ in answered} and left <= {clip.name for clip, _, _ in busy}

"""The app in a real browser: headless chromium uploads files to the served app and reads the page.

The server is the Hugging Face Space that `ser-hf app MODEL --export_space DIR` writes, started from its own folder:
one server start proves both that the exported Space runs from the ser_hf copy it carries and that the app works
(`ser-hf app MODEL` serves the same `build_app` Blocks; tests/app/test_demo_app.py checks what it launches).

The browser is Debian's chromium driven by chromium-driver through Selenium (pip cannot download browsers here);
`bash run.sh setup` installs both. Screenshots go to $SER_HF_TEST_ARTIFACTS (default: the test's tmp folder), so
CI can keep them. The model is `tone_model` (tests/conftest.py); the uploads are espeak-ng speech
(tests/inference/test_vad.py), since the app's voice-activity detector answers "no speech detected" for the tones the
model was trained on: what the page shows is compared with what predict.py and the timeline give for the same file.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.commands import app as app_command
from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.inference.classify import classify_files, load_classifier
from ser_hf.inference.timeline import emotion_timeline
from ser_hf.inference.vad import NO_SPEECH
from tests.inference.test_vad import write_speech

pytestmark = pytest.mark.slow

RESULT_ID = "ser-result"  # ser_hf.app.demo_app.RESULT_ID (not imported: the page is what is under test)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tone_model, tmp_path_factory):
    """The app as a Hugging Face Space runs it: exported by `ser-hf app MODEL --export_space DIR`, then DIR's own
    app.py started in DIR (on a free loopback port, on the local model). Returns (URL, where ser_hf came from)."""
    space = tmp_path_factory.mktemp("space") / "space"
    assert app_command.main([str(tone_model), "--export_space", str(space), "--space_model_id", "someone/ser-demo",
                             "--examples", "none"]) == 0
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": "",
           "SER_HF_MODEL": str(tone_model), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    launcher = ("import runpy, ser_hf; print(ser_hf.__file__, flush=True); "
                "runpy.run_path('app.py', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=space, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the app did not answer on {url} within 120 s")
                time.sleep(0.5)
        yield url, Path(proc.stdout.readline().strip()), space
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: run `bash run.sh setup` "
                    "(apt-get install -y chromium chromium-driver)")
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = Path(os.environ.get("SER_HF_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _upload_and_read(browser, url, path):
    """Open the app, upload `path` through its file input, and return the result line once it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    [file_input] = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "input[type=file]"))
    file_input.send_keys(str(path))
    # The Markdown's own text, not the whole component: while an event runs, Gradio's progress tracker
    # ("processing | 0.0/0.5s") is drawn inside the component too, beside a result that may already be there.
    message = f"#{RESULT_ID} [data-testid=markdown]"
    return WebDriverWait(browser, 60).until(lambda b: b.find_element(By.CSS_SELECTOR, message).text.strip() or None)


def test_an_uploaded_clip_shows_the_label_predict_gives(server, browser, tone_model, artifacts, tmp_path):
    clip, _ = write_speech(tmp_path / "spoken.wav")
    # predict.py --batch_size 1: the plain pipeline, file by file, as the app runs it (batches agree on the label,
    # and on the score only up to float rounding, which the third decimal could show).
    [row] = classify_files(load_classifier(tone_model, device="cpu"), [clip], top_k=3, batch_size=1, vad=True)
    shown = _upload_and_read(browser, server[0], clip)
    browser.save_screenshot(str(artifacts / "app_prediction.png"))
    assert row["label"] != NO_SPEECH
    assert shown == f"Top emotion: {row['label']} {row['score']:.3f}"
    assert row["top_k"][1][0] in browser.find_element("tag name", "body").text  # the bar chart's runner-up


def test_a_long_file_shows_its_timeline_over_the_speech(server, browser, tone_model, artifacts, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path, _ = write_speech(tmp_path / "pause_between.wav", pad_seconds=(0.0, 2.0), actor=3)
    words, _ = sf.read(path, dtype="float32")
    sf.write(path, np.concatenate([words, words]), SAMPLE_RATE, subtype="PCM_16")  # speech, 2 s pause, speech, pause
    timeline = emotion_timeline(load_classifier(tone_model, device="cpu"), path, vad=True)
    _upload_and_read(browser, server[0], path)

    # The table of windows fills in with the result: rows of start, end, emotion, score under a header row.
    def window_rows(b):
        rows = [r.text.split("\n") for r in b.find_elements(By.CSS_SELECTOR, "[role=row]")][1:]
        return rows if any(NO_SPEECH in r for r in rows) else None

    rows = WebDriverWait(browser, 30).until(window_rows)
    browser.save_screenshot(str(artifacts / "app_timeline.png"))
    # The timeline's own windows: over the speech, the pauses between them "no speech detected".
    assert [r[:3] for r in rows] == [[f"{w['start']:g}", f"{w['end']:g}", w["label"]] for w in timeline["windows"]]
    pauses = [float(r[1]) - float(r[0]) for r in rows if r[2] == NO_SPEECH]
    assert rows[-1][2] == NO_SPEECH and sum(pause > 1.5 for pause in pauses) == 2  # the two 2 s pauses


def test_a_recording_without_speech_says_so(server, browser, artifacts, tmp_path):
    quiet = tmp_path / "room_noise.wav"
    sf.write(quiet, (0.01 * np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)
    shown = _upload_and_read(browser, server[0], quiet)
    browser.save_screenshot(str(artifacts / "app_no_speech.png"))
    assert shown.startswith("No speech detected in room_noise.wav") and "Top emotion" not in shown


def test_a_file_that_is_not_audio_shows_the_error(server, browser, tone_model, artifacts, tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("meeting notes, saved with the wrong extension")
    [row] = classify_files(load_classifier(tone_model, device="cpu"), [notes])
    shown = _upload_and_read(browser, server[0], notes)
    browser.save_screenshot(str(artifacts / "app_error.png"))
    assert row["error"].startswith("unreadable")
    assert shown == f"Cannot classify notes.wav: {row['error'].replace(str(notes), 'notes.wav')}"


def test_the_space_ran_from_its_own_copy_of_ser_hf(server):
    url, ser_hf_file, space = server
    assert ser_hf_file == space / "ser_hf" / "__init__.py"

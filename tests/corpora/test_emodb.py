"""EmoDB: file names, the loader, speaker folds, and the download against a loopback server."""

import http.server
import logging
import threading
import zipfile
from functools import partial

import pytest

from ser_hf.config import DataArguments
from ser_hf.corpora.emobox import emobox_folds
from ser_hf.corpora.emodb import EMODB_LABELS, EMODB_ZIP_NAME, load_emodb, parse_emodb_filename, prepare_emodb
from ser_hf.data.prepare import prepare_splits
from ser_hf.errors import UsageError
from tests.conftest import make_emodb_tree


@pytest.mark.parametrize("name, expected", [
    ("03a01Fa.wav", {"speaker": "03", "text": "a01", "emotion": "happy", "version": "a"}),
    ("16b10Wb.wav", {"speaker": "16", "text": "b10", "emotion": "angry", "version": "b"}),
    ("09b03L.wav", {"speaker": "09", "text": "b03", "emotion": "boredom", "version": ""}),
    ("readme.wav", None),
])
def test_the_name_says_speaker_text_and_emotion(name, expected):
    assert parse_emodb_filename(name) == expected


def test_a_name_with_an_unknown_speaker_or_letter_is_refused():
    with pytest.raises(UsageError, match="speaker 04 / emotion letter F"):
        parse_emodb_filename("04a01Fa.wav")
    with pytest.raises(UsageError, match="emotion letter X"):
        parse_emodb_filename("03a01Xa.wav")


def test_the_loader_keeps_the_clips_and_skips_the_rest(tmp_path, caplog):
    make_emodb_tree(tmp_path)
    rows = load_emodb(tmp_path)
    assert len(rows) == 10 * 2 * 7 and {r["label"] for r in rows} == set(EMODB_LABELS)
    clip = next(r for r in rows if r["path"].endswith("08a01Ta.wav"))
    assert (clip["label"], clip["speaker"], clip["gender"]) == ("sad", "emodb08", "female")
    assert "where the release has 535" in caplog.text  # a partial copy says so


def test_five_folds_of_one_actress_and_one_actor(tmp_path):
    make_emodb_tree(tmp_path)
    genders = {r["speaker"]: r["gender"] for r in load_emodb(tmp_path)}
    seen = set()
    for fold in range(5):
        validation = prepare_splits(DataArguments(corpus="emodb", data_dir=str(tmp_path), n_folds=5, fold=fold,
                                                  download=False)).splits["validation"]
        speakers = {r["speaker"] for r in validation}
        assert sorted(genders[s] for s in speakers) == ["female", "male"]
        seen |= speakers
    assert len(seen) == 10


def test_emobox_has_no_speaker_folds_for_emodb():
    with pytest.raises(UsageError, match="all 10 speakers in every test file"):
        emobox_folds("emodb")


@pytest.fixture
def emodb_server(tmp_path):
    """The release's zip (wav/ and the other folders) on a loopback HTTP server."""
    source = tmp_path / "source"
    make_emodb_tree(source, speakers=("03", "08"), texts=("a01",))
    www = tmp_path / "www"
    www.mkdir()
    with zipfile.ZipFile(www / EMODB_ZIP_NAME, "w") as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source).as_posix())
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{EMODB_ZIP_NAME}", requests
    httpd.shutdown()
    httpd.server_close()


def test_prepare_downloads_extracts_once_and_logs_the_md5(tmp_path, emodb_server, caplog):
    url, requests = emodb_server
    data_dir = tmp_path / "data" / "emodb"
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.emodb"):
        rows = prepare_emodb(data_dir, url=url)
    assert len(rows) == 2 * 7 and (data_dir / "wav" / "03a01Fa.wav").is_file()
    assert "has md5" in caplog.text
    assert prepare_emodb(data_dir, url=url) == rows and prepare_emodb(data_dir, download=False) == rows
    assert len(requests) == 1


def test_prepare_without_download_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="--download false"):
        prepare_emodb(tmp_path / "empty", download=False)

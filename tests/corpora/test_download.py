"""download_file against a loopback HTTP server, and safe_extract_zip against crafted archives."""

import hashlib
import http.server
import os
import stat
import threading
import urllib.error
import zipfile
from pathlib import Path

import pytest

from ser_hf.corpora.download import download_file, is_extracted, md5sum, safe_extract_zip

PAYLOAD = os.urandom(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from server.root; Range support and failures are switched on the server object."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if server.failures:
            mode = server.failures.pop(0)
            if mode == "500":
                self.send_error(500, "flaky")
                return
            if mode == "truncate":
                # Promise the whole file, send half, hang up: what a dropped connection looks like.
                data = (server.root / self.path.lstrip("/").split("?")[0]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
        path = server.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and server.support_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "corpus.zip").write_bytes(PAYLOAD)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.root, httpd.requests, httpd.failures, httpd.support_range = root, [], [], True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/corpus.zip?download=1"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _part(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


def test_md5sum(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(PAYLOAD)
    assert md5sum(f) == PAYLOAD_MD5
    assert md5sum(f, chunk_size=7) == PAYLOAD_MD5


def test_download_verifies_md5(server, tmp_path):
    dest = tmp_path / "out" / "corpus.zip"
    assert download_file(server.url, dest, md5=PAYLOAD_MD5.upper(), chunk_size=4096) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not _part(dest).exists()
    assert len(server.requests) == 1 and server.requests[0]["range"] is None


def test_md5_mismatch_raises_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "corpus.zip"
    wrong = "0" * 32
    with pytest.raises(ValueError) as info:
        download_file(server.url, dest, md5=wrong, backoff=0)
    message = str(info.value)
    assert server.url in message and wrong in message and PAYLOAD_MD5 in message
    assert not dest.exists() and not _part(dest).exists()


def test_resumes_partial_download_with_range(server, tmp_path):
    dest = tmp_path / "corpus.zip"
    _part(dest).write_bytes(PAYLOAD[:123_456])
    download_file(server.url, dest, md5=PAYLOAD_MD5)
    assert [r["range"] for r in server.requests] == ["bytes=123456-"]
    assert dest.read_bytes() == PAYLOAD


def test_restarts_when_server_ignores_range(server, tmp_path):
    server.support_range = False
    dest = tmp_path / "corpus.zip"
    _part(dest).write_bytes(PAYLOAD[:1000])
    download_file(server.url, dest, md5=PAYLOAD_MD5)
    assert server.requests[0]["range"] == "bytes=1000-"
    assert dest.read_bytes() == PAYLOAD  # the 1000 bytes were not appended twice


def test_stale_part_is_redone_from_scratch(server, tmp_path):
    dest = tmp_path / "corpus.zip"
    _part(dest).write_bytes(b"x" * 5000)  # bytes of some other file
    download_file(server.url, dest, md5=PAYLOAD_MD5, backoff=0)
    assert [r["range"] for r in server.requests] == ["bytes=5000-", None]
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_left_before_rename_is_finished(server, tmp_path):
    dest = tmp_path / "corpus.zip"
    _part(dest).write_bytes(PAYLOAD)  # killed between the last byte and os.replace
    download_file(server.url, dest, md5=PAYLOAD_MD5)
    assert server.requests[0]["range"] == f"bytes={len(PAYLOAD)}-"  # answered 416
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("failure", ["500", "truncate"])
def test_retries_after_failure(server, tmp_path, failure):
    server.failures = [failure]
    dest = tmp_path / "corpus.zip"
    download_file(server.url, dest, md5=PAYLOAD_MD5, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    if failure == "truncate":  # the second request resumes after the half that arrived
        assert server.requests[1]["range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_gives_up_after_retries(server, tmp_path):
    server.failures = ["truncate"] * 3
    dest = tmp_path / "corpus.zip"
    server.support_range = False  # every attempt restarts and is cut again
    with pytest.raises(OSError, match="after 3 attempts"):
        download_file(server.url, dest, md5=PAYLOAD_MD5, retries=2, backoff=0)
    assert not dest.exists()
    assert len(server.requests) == 3


def test_404_is_not_retried(server, tmp_path):
    with pytest.raises(urllib.error.HTTPError):
        download_file(server.url.replace("corpus.zip", "missing.zip"), tmp_path / "m.zip", backoff=0)
    assert len(server.requests) == 1


def test_existing_dest_with_right_md5_makes_no_request(server, tmp_path):
    dest = tmp_path / "corpus.zip"
    dest.write_bytes(PAYLOAD)
    download_file(server.url, dest, md5=PAYLOAD_MD5)
    assert server.requests == []


def test_existing_dest_with_wrong_md5_is_replaced(server, tmp_path):
    dest = tmp_path / "corpus.zip"
    dest.write_bytes(b"truncated")
    download_file(server.url, dest, md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 1


# --- safe_extract_zip ---------------------------------------------------------------------------


def _zip(path: Path, entries: dict) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():  # name: str or ZipInfo
            zf.writestr(name, data)
    return path


def _all_files(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_extracts_normal_zip_and_is_idempotent(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"Actor_01/x.wav": b"1", "Actor_02/": b"", "Actor_02/y.wav": b"22"})
    target = tmp_path / "data"
    paths = safe_extract_zip(archive, target)
    assert sorted(p.relative_to(target.resolve()).as_posix() for p in paths) == ["Actor_01/x.wav", "Actor_02/y.wav"]
    assert (target / "Actor_02" / "y.wav").read_bytes() == b"22"
    assert is_extracted(archive, target)
    # No temporary folder is left next to the target.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "data"]

    (target / "Actor_01" / "x.wav").write_bytes(b"edited")
    safe_extract_zip(archive, target)  # marked complete: not extracted again
    assert (target / "Actor_01" / "x.wav").read_bytes() == b"edited"


def test_interrupted_extraction_is_redone(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"Actor_01/x.wav": b"1", "Actor_02/y.wav": b"2"})
    target = tmp_path / "data"
    safe_extract_zip(archive, target)
    # Simulate a kill during the move: one file in place, no marker, a leftover temp folder.
    (target / "Actor_02" / "y.wav").unlink()
    next(target.glob(".*.extracted.json")).unlink()
    leftover = tmp_path / ".data.a.extracting"
    (leftover / "junk").mkdir(parents=True)
    assert not is_extracted(archive, target)
    safe_extract_zip(archive, target)
    assert (target / "Actor_02" / "y.wav").read_bytes() == b"2"
    assert not leftover.exists() and is_extracted(archive, target)


def test_marker_without_files_is_not_trusted(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"x.wav": b"1"})
    safe_extract_zip(archive, tmp_path / "data")
    (tmp_path / "data" / "x.wav").unlink()
    assert not is_extracted(archive, tmp_path / "data")
    safe_extract_zip(archive, tmp_path / "data")
    assert (tmp_path / "data" / "x.wav").exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "ok/../../evil.txt", "/tmp/ser_hf_evil_abs.txt", "..\\evil.txt"])
def test_refuses_escaping_entries(tmp_path, bad):
    archive = _zip(tmp_path / "bad.zip", {"good.txt": b"fine", bad: b"pwned"})
    target = tmp_path / "sub" / "data"
    with pytest.raises(ValueError, match=r"evil"):
        safe_extract_zip(archive, target)
    assert not (tmp_path / "sub" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/ser_hf_evil_abs.txt").exists()
    assert not target.exists()  # validated before anything was written, good.txt included


def test_refuses_symlink_entries(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip(tmp_path / "link.zip", {info: "/etc/passwd"})
    with pytest.raises(ValueError, match="'link'.*symbolic link"):
        safe_extract_zip(archive, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_refuses_entries_through_a_symlinked_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "data"
    target.mkdir()
    (target / "Actor_01").symlink_to(outside, target_is_directory=True)
    archive = _zip(tmp_path / "a.zip", {"Actor_01/x.wav": b"1"})
    with pytest.raises(ValueError, match="Actor_01/x.wav"):
        safe_extract_zip(archive, target)
    assert _all_files(outside) == set()

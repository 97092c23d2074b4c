"""Checksum-verified, resumable downloads and safe zip extraction (stdlib only).

A corpus download is the first thing a real run does and the easiest to break: a dropped
connection, a killed process or a tampered archive must never leave something on disk that a
later run mistakes for a finished corpus. Hence the rules here: bytes go to a `.part` file,
the final name only appears (atomically) once the md5 matches, and an extraction is only
treated as done once a completion marker says so.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import stat
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

_USER_AGENT = "ser_hf-downloader/0.1 (+python urllib)"
# Server errors and throttling are worth another try; 404 or 403 will not fix themselves.
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


class _RetryableError(Exception):
    """A failure that another attempt (resuming from the .part) may get past."""


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex md5 digest of a file, read in chunks.

    Args:
        path: file to hash.
        chunk_size: bytes read at a time (keeps memory flat for large archives).

    Returns:
        The lowercase hex digest.
    """
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    retries: int = 3,
    chunk_size: int = 1 << 20,
    *,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest`, resuming, retrying and verifying the md5.

    Bytes are written to `dest + ".part"`. A leftover `.part` from an interrupted run is resumed
    with an HTTP Range request when the server answers 206; otherwise the download restarts.
    Only a complete file whose md5 matches is moved to `dest` (atomic `os.replace`), so `dest`
    is never half-written.

    Args:
        url: http(s) URL to fetch.
        dest: final file path; parent folders are created.
        md5: expected hex md5. None skips verification (and then an existing `dest` is trusted).
        retries: further attempts after the first one fails with a network error, a truncated
            body or a retryable HTTP status (408, 429, 5xx). Each attempt resumes from the `.part`.
        chunk_size: bytes read per network read.
        backoff: seconds to wait before the first retry; doubled for each further retry.
        timeout: socket timeout in seconds for connecting and for each read.

    Returns:
        `dest` as a Path.

    Raises:
        UsageError: the downloaded file's md5 differs from `md5` (the `.part` is deleted).
        urllib.error.HTTPError: a non-retryable HTTP status (e.g. 404).
        OSError: the download still failed after all retries.
    """
    dest = Path(dest)
    md5 = md5.lower() if md5 else None
    if _already_downloaded(dest, md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    _download_verified(url, part, md5, retries, chunk_size, backoff, timeout)
    with open(part, "rb+") as f:
        os.fsync(f.fileno())  # so a crash right after the rename cannot leave a short file under the final name
    os.replace(part, dest)
    logger.info("Downloaded %s -> %s", url, dest)
    return dest


def _already_downloaded(dest: Path, md5: str | None) -> bool:
    """Whether `dest` exists and its md5 matches (any existing `dest` when no md5 is given)."""
    if not dest.exists():
        return False
    if md5 is None:
        logger.info("%s already exists (no md5 given to check it); not downloading", dest)
        return True
    actual = md5sum(dest)
    if actual == md5:
        logger.info("%s already present, md5 verified; not downloading", dest)
        return True
    logger.warning("%s exists but its md5 is %s, expected %s; downloading it again", dest, actual, md5)
    return False


def _download_verified(
    url: str, part: Path, md5: str | None, retries: int, chunk_size: int, backoff: float, timeout: float
) -> None:
    """Fill `part` with `url`'s body and check its md5, restarting once from scratch after a resumed download
    whose md5 is wrong.

    Raises:
        UsageError: the md5 is wrong (the `.part` is deleted).
    """
    # A stale .part (from another version of the file) resumes "successfully" into garbage; if the
    # md5 then fails, one clean restart is cheaper for the user than an error telling them to rm it.
    for clean_restart in (False, True):
        resumed = _download_with_retries(url, part, retries, chunk_size, backoff, timeout)
        if md5 is None:
            return
        actual = md5sum(part)
        if actual == md5:
            return
        part.unlink(missing_ok=True)
        if resumed and not clean_restart:
            logger.warning("md5 mismatch after resuming %s (stale partial file?); restarting from scratch", url)
            continue
        raise UsageError(
            f"Checksum mismatch for {url}: expected md5 {md5}, got {actual}. The partial file was deleted; "
            "the download was corrupted or the file on the server changed."
        )


def _download_with_retries(
    url: str, part: Path, retries: int, chunk_size: int, backoff: float, timeout: float
) -> bool:
    """Fill `part` with the full body of `url`; return True if any bytes came from a resumed .part."""
    resumed = False
    for attempt in range(retries + 1):
        try:
            resumed |= _download_once(url, part, chunk_size, timeout)
            return resumed
        except urllib.error.HTTPError as err:
            if err.code not in _RETRYABLE_HTTP or attempt == retries:
                raise
            reason = f"HTTP {err.code}"
        except (_RetryableError, urllib.error.URLError, http.client.HTTPException, socket.timeout,
                ConnectionError) as err:
            if attempt == retries:
                raise OSError(f"Download of {url} failed after {retries + 1} attempts: {err}") from err
            reason = str(err) or type(err).__name__
        wait = backoff * 2**attempt
        logger.warning(
            "Download of %s failed (%s); retry %d/%d in %.1f s (resuming from %d bytes)",
            url, reason, attempt + 1, retries, wait, part.stat().st_size if part.exists() else 0,
        )
        time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _download_once(url: str, part: Path, chunk_size: int, timeout: float) -> bool:
    """One HTTP request appending to (or restarting) `part`. Return True if it resumed."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range beyond the end: the .part is probably complete already (killed before the rename).
            # Let the md5 check decide; a bad one triggers the clean restart in download_file.
            err.close()
            return True
        raise
    with response:
        resumed = offset > 0 and response.status == 206
        if offset and not resumed:
            logger.info("Server ignored the Range request for %s; restarting the download", url)
            offset = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total = offset + expected if expected is not None else None
        received = 0
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-5], leave=False
        ) as bar:
            while True:
                chunk = response.read(chunk_size)
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without raising when the peer closes early, so count bytes.
    if expected is not None and received < expected:
        raise _RetryableError(f"connection closed after {received} of {expected} bytes")
    return resumed


def _zip_member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """Validate one zip entry's name and return it as a relative path, or raise ValueError."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        # zipfile would write the link target as a plain file; a real link could point anywhere.
        raise UsageError(f"Refusing zip entry {name!r}: symbolic links are not extracted")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise UsageError(f"Refusing zip entry {name!r}: absolute path")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"Refusing zip entry {name!r}: '..' would escape the target folder")
    if not parts:
        raise UsageError(f"Refusing zip entry {name!r}: empty path")
    return PurePosixPath(*parts)


def _marker_path(zip_path: Path, target: Path) -> Path:
    return target / f".{zip_path.name}.extracted.json"


def _zip_stamp(zip_path: Path) -> dict:
    st = zip_path.stat()
    return {"zip": zip_path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_extracted(zip_path: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Whether `safe_extract_zip(zip_path, target)` completed for this very zip file.

    Args:
        zip_path: the archive.
        target: the folder it was extracted into.

    Returns:
        True when the completion marker matches the zip (size, mtime) and every file it lists exists.
    """
    zip_path, target = Path(zip_path), Path(target)
    marker = _marker_path(zip_path, target)
    try:
        record = json.loads(marker.read_text())
        if not zip_path.exists() or record["stamp"] != _zip_stamp(zip_path):
            return False
        return all((target / rel).is_file() for rel in record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def safe_extract_zip(zip_path: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract a zip into `target`, refusing entries that could write outside it.

    Every entry is checked before anything is written: absolute paths, `..` components and
    symbolic links raise ValueError. Files are extracted into a temporary folder next to `target`
    and then moved in; a marker file in `target` records completion, so an extraction that was
    killed half-way is detected and redone on the next call, and a finished one is not repeated.
    Not safe for two processes extracting into the same target at once (call it from the main process).

    Args:
        zip_path: the archive.
        target: destination folder (created if missing; existing unrelated files are kept).

    Returns:
        Absolute paths of the extracted files (not folders), in archive order.

    Raises:
        UsageError: an unsafe entry, named in the message. Nothing is extracted then.
        zipfile.BadZipFile: the archive is corrupt.
    """
    zip_path = Path(zip_path)
    target = Path(target).resolve()
    marker = _marker_path(zip_path, target)
    with zipfile.ZipFile(zip_path) as zf:
        members = [(info, _zip_member_path(info)) for info in zf.infolist()]  # validate all before writing any
        files = [rel for info, rel in members if not info.is_dir()]
        for info, rel in members:
            # A symlinked folder already inside target could still carry a clean name elsewhere.
            resolved = target.joinpath(*rel.parts).resolve()
            if os.path.commonpath([resolved, target]) != str(target):
                raise UsageError(f"Refusing zip entry {info.filename!r}: resolves to {resolved}, outside {target}")
        if is_extracted(zip_path, target):
            logger.info("%s already extracted into %s", zip_path.name, target)
            return [target / rel for rel in files]
        _extract_members(zf, zip_path, members, files, target)
    marker_tmp = marker.with_name(marker.name + ".tmp")
    marker_tmp.write_text(json.dumps({"stamp": _zip_stamp(zip_path), "files": [str(r) for r in files]}))
    os.replace(marker_tmp, marker)
    return [target / rel for rel in files]


def _extract_members(
    zf: zipfile.ZipFile,
    zip_path: Path,
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    files: list[PurePosixPath],
    target: Path,
) -> None:
    """Extract into a temporary folder next to `target`, then move the files in: a killed extraction leaves
    nothing half-written in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    # Same filesystem as target so the moves below are renames, not copies.
    tmp = target.parent / f".{target.name}.{zip_path.stem}.extracting"
    if tmp.exists():
        logger.info("Removing leftovers of an interrupted extraction: %s", tmp)
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        logger.info("Extracting %s (%d files) into %s", zip_path.name, len(files), target)
        for info, rel in tqdm(members, desc=f"extract {zip_path.name}", unit="file", leave=False):
            out = tmp.joinpath(*rel.parts)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        for rel in files:
            final = target.joinpath(*rel.parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp.joinpath(*rel.parts), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

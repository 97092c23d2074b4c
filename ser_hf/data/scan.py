"""Validation scan: decode every audio file once before training and exclude the bad ones with a report.

A single undecodable, truncated or NaN file otherwise kills (or silently poisons) a run thousands of steps in.

    results = scan_files(rows_paths, cache_path="outputs/scan_cache.json")
    kept, excluded = partition_rows(rows, results)
    report = data_report({"train": excluded}, notes_count)
    print(report_markdown(report)); write_data_report(report, out / "data_report.json")
    if strict: raise_if_strict(report)
"""

import json
import logging
import os
import re
import struct
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_hf.corpora.files import LFS_SIGNATURE
from ser_hf.data.audio import MIN_SAMPLES, SAMPLE_RATE
from ser_hf.errors import WriteFailed, count
from ser_hf.storage import write_text_atomic

logger = logging.getLogger(__name__)

REASONS = ("unreadable", "empty", "truncated", "too_short", "non_finite", "silent", "too_long")
_CACHE_VERSION = 1  # bump when the classification rules change, so old caches are ignored


class BadAudioError(ValueError):
    """Raised in --strict mode when the validation scan excluded any file."""


@dataclass
class ScanResult:
    """What the scan found in one file: "ok" or the reason to exclude it, and what it decoded.

    Attributes:
        path: the file, as given.
        status: "ok" or one of `REASONS`.
        detail: the reason in words ("" when ok).
        duration: decoded seconds (0.0 when nothing decoded).
        sample_rate, channels: from the file's metadata; None when it could not be opened.
        notes: "multichannel" / "resampled" for a kept file that is converted when loaded.
    """

    path: str
    status: str
    detail: str
    duration: float
    sample_rate: int | None
    channels: int | None
    notes: list[str] = field(default_factory=list)


def clean_error(exc):
    """A decoder exception as a one-line reason for a report or an error row (at most 300 characters).

    Args:
        exc: the exception.

    Returns:
        Its first line, without the C++ function and source location torchcodec puts in front.
    """
    message = re.sub(r"^.*\.cpp:\d+, ", "", str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
    return message[:300]


def _wav_frames(path):
    """(declared frames, frames present, sample rate) from a RIFF/WAVE header, or None for other files.

    Needed because neither torchcodec's `duration_seconds_from_header` nor soundfile's `frames` reflects
    the header of a truncated WAV: both report what the file holds, so truncation is invisible to them.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF" or f.read(8)[4:] != b"WAVE":
            return None
        block_align = rate = None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            chunk_id, chunk_size = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk_id == b"fmt ":
                fmt = f.read(chunk_size + chunk_size % 2)
                rate, block_align = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
            elif chunk_id == b"data":
                # 0 and 0xFFFFFFFF mean "unknown length" for streaming writers: not evidence of truncation.
                if not block_align or chunk_size in (0, 0xFFFFFFFF):
                    return None
                present = max(0, min(chunk_size, size - f.tell()))
                return chunk_size // block_align, present // block_align, rate
            else:
                f.seek(chunk_size + chunk_size % 2, os.SEEK_CUR)


def scan_file(path, min_samples=MIN_SAMPLES, max_seconds=30.0, silence_threshold=1e-4, target_rate=SAMPLE_RATE):
    """Decode one file and classify it as "ok" or the first matching reason in `REASONS`.

    Args:
        path: Audio file path.
        min_samples: Fewest samples at `target_rate` the model accepts (wav2vec2's conv stack needs 400).
        max_seconds: Longest accepted duration; None disables the check.
        silence_threshold: A file whose peak absolute amplitude is at most this is "silent".
        target_rate: Rate the training pipeline resamples to; other rates are noted as "resampled".

    Returns:
        A `ScanResult`; `notes` lists "multichannel"/"resampled" for files that are kept but converted.
    """
    from torchcodec.decoders import AudioDecoder  # imported here so the module imports without torchcodec

    path = str(path)

    def result(status, detail, duration=0.0, rate=None, channels=None, notes=()):
        return ScanResult(path, status, detail, float(duration), rate, channels, list(notes))

    try:
        if os.path.getsize(path) == 0:
            return result("empty", "0-byte file")
        with open(path, "rb") as f:
            if f.read(len(LFS_SIGNATURE)) == LFS_SIGNATURE:
                return result("unreadable", "git-lfs pointer, not audio: run `git lfs pull`")
        wav = _wav_frames(path)
        decoder = AudioDecoder(path)
        meta = decoder.metadata
    except Exception as exc:
        return result("unreadable", clean_error(exc))
    rate, channels = meta.sample_rate, meta.num_channels
    notes = [n for n, on in (("multichannel", (channels or 1) > 1), ("resampled", rate != target_rate)) if on]
    header_s = wav[0] / wav[2] if wav else meta.duration_seconds_from_header
    header_text = f"header says {header_s:.2f} s" if header_s else "no duration in header"
    try:
        data = decoder.get_all_samples().data.numpy()
    except Exception as exc:
        if (wav and wav[1] == 0) or "No audio frames" in str(exc):
            return result("empty", f"no audio samples ({header_text})", 0.0, rate, channels, notes)
        if wav and wav[1] < wav[0]:  # cut mid-sample: ffmpeg refuses the partial frame
            held = wav[1] / wav[2]
            detail = f"{header_text}, data holds {held:.2f} s; decoder: {clean_error(exc)}"
            return result("truncated", detail, held, rate, channels, notes)
        return result("unreadable", clean_error(exc), 0.0, rate, channels, notes)
    n = data.shape[-1]
    duration = n / rate
    ok = lambda status, detail: result(status, detail, duration, rate, channels, notes)  # noqa: E731
    if n == 0:
        return ok("empty", f"no audio samples ({header_text})")
    if header_s and header_s - duration > max(0.05 * header_s, 0.05):
        return ok("truncated", f"{header_text}, data holds {duration:.2f} s")
    if n * target_rate / rate < min_samples:
        return ok("too_short", f"{n} samples at {rate} Hz, fewer than {min_samples} at {target_rate} Hz")
    finite = np.isfinite(data)
    if not finite.all():
        return ok("non_finite", f"{int((~finite).sum())} NaN/Inf samples")
    peak = float(np.abs(data).max())
    if peak <= silence_threshold:
        return ok("silent", f"peak amplitude {peak:.2g} <= {silence_threshold:g} (digital silence)")
    if max_seconds is not None and duration > max_seconds:
        return ok("too_long", f"{duration:.2f} s > max_seconds={max_seconds:g}")
    return ok("ok", "")


def _scan_one(args):
    path, kw = args
    return scan_file(path, **kw)


def _stamp(path):
    try:
        st = os.stat(path)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return None  # missing files are rescanned every time (and reported unreadable)


def scan_files(paths, min_samples=MIN_SAMPLES, max_seconds=30.0, workers=None, cache_path=None, progress=True, **kw):
    """Scan many files in parallel, reusing cached results for files unchanged since the last scan.

    Args:
        paths: Audio file paths.
        min_samples, max_seconds, **kw: Passed to `scan_file` (`silence_threshold`, `target_rate`).
        workers: Worker processes; defaults to `os.cpu_count()`. 1 scans in this process.
        cache_path: JSON file of earlier results; entries are reused when the file's size, mtime_ns and
            the scan parameters all match, and the file is rewritten atomically.
        progress: Show a tqdm bar.

    Returns:
        Dict of `ScanResult` keyed by path (as given).
    """
    params = {"min_samples": min_samples, "max_seconds": max_seconds, **kw}
    paths = list(dict.fromkeys(str(p) for p in paths))
    cached = {}
    if cache_path and Path(cache_path).exists():
        try:
            blob = json.loads(Path(cache_path).read_text())
            if blob.get("version") == _CACHE_VERSION and blob.get("params") == params:
                cached = blob["files"]
        except (OSError, ValueError, KeyError):
            cached = {}  # a corrupt cache only costs a rescan
    results, stamps, todo = {}, {}, []
    for p in paths:
        key, stamps[p] = os.path.abspath(p), _stamp(p)
        results[p] = _reuse(cached.get(key), stamps[p], p)
        if results[p] is None:
            todo.append(p)
    workers = workers or os.cpu_count() or 1
    # No bar when the cache answered for every file: an empty "0file" bar says nothing.
    bar = tqdm(total=len(todo), desc="scanning audio", unit="file", disable=not progress or not todo)
    if workers == 1 or len(todo) < 2:
        for p in todo:
            results[p] = scan_file(p, **params)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            chunk = max(1, len(todo) // (workers * 8))  # batches amortise pickling; small enough to balance
            for p, res in zip(todo, pool.map(_scan_one, [(p, params) for p in todo], chunksize=chunk)):
                results[p] = res
                bar.update()
    bar.close()
    if cache_path and todo:
        for p in todo:
            if stamps[p]:
                cached[os.path.abspath(p)] = {**stamps[p], "result": asdict(results[p])}
        _save_cache(cache_path, {"version": _CACHE_VERSION, "params": params, "files": cached})
    return {p: results[p] for p in paths}


def _reuse(entry, stamp, path):
    """The cached result of `path` when its entry is intact and the file unchanged, else None (scan it again)."""
    try:
        if stamp and entry and {k: entry[k] for k in ("size", "mtime_ns")} == stamp:
            return ScanResult(**{**entry["result"], "path": path})
    except (KeyError, TypeError):  # an entry damaged by hand or by a foreign writer: only costs a rescan
        pass
    return None


def _save_cache(cache_path, blob):
    """Write the scan cache atomically; a full disk only costs the next run a rescan (a warning, no error)."""
    try:
        write_text_atomic(cache_path, json.dumps(blob))
    except WriteFailed as err:
        logger.warning("Could not save the audio scan's cache %s (%s): the next run scans again", cache_path,
                       os.strerror(err.__cause__.errno) if getattr(err.__cause__, "errno", None) else err.__cause__)


def partition_rows(rows, results, path_key="path"):
    """Split metadata rows into kept rows (with the decoded "duration" in seconds added, so nothing reads the
    files again for it) and excluded rows (with "reason" and "detail" added).

    Args:
        rows: metadata rows.
        results: `scan_files` output, keyed by path.
        path_key: the row key holding the path.

    Returns:
        (kept rows, excluded rows), each in input order.

    Raises:
        KeyError: A row's path was not scanned (a caller bug: every row must be scanned).
    """
    kept, excluded = [], []
    for row in rows:
        res = results[str(row[path_key])]
        if res.status == "ok":
            kept.append({**row, "duration": res.duration})
        else:
            excluded.append({**row, "reason": res.status, "detail": res.detail})
    return kept, excluded


def data_report(excluded_by_split, notes_count=None, label_key="label"):
    """Summarise excluded rows: totals per reason, per split (by reason) and per class, plus every file.

    Args:
        excluded_by_split: Split name -> excluded rows from `partition_rows`.
        notes_count: Optional note -> number of kept files (e.g. {"resampled": 12}).
        label_key: Row key holding the class label.

    Returns:
        A JSON-serialisable dict.
    """
    by_reason, by_split, by_class, files = Counter(), {}, Counter(), []
    for split, rows in excluded_by_split.items():
        by_split[split] = dict(Counter(r["reason"] for r in rows))
        for r in rows:
            by_reason[r["reason"]] += 1
            by_class[str(r.get(label_key))] += 1
            files.append({"path": str(r.get("path", "")), "split": split, "label": r.get(label_key),
                          "reason": r["reason"], "detail": r["detail"]})
    return {"n_excluded": len(files), "by_reason": {k: by_reason[k] for k in REASONS if by_reason[k]},
            "by_split": by_split, "by_class": dict(by_class), "notes": dict(notes_count or {}), "files": files}


def report_markdown(report, max_files=20):
    """A short markdown summary for the training log and the model card.

    Args:
        report: `data_report` output.
        max_files: how many excluded files the table lists.

    Returns:
        Markdown text.
    """
    if not report["n_excluded"]:
        lines = ["Data validation: every audio file decoded cleanly; nothing was excluded."]
    else:
        splits = list(report["by_split"])
        lines = [f"Data validation: **{count(report['n_excluded'], 'file')} excluded** from training/evaluation.", "",
                 "| reason | " + " | ".join(splits) + " | total |", "|---" * (len(splits) + 2) + "|"]
        for reason, total in report["by_reason"].items():
            cells = [str(report["by_split"][s].get(reason, 0)) for s in splits]
            lines.append(f"| {reason} | " + " | ".join(cells) + f" | {total} |")
        lines += ["", "| file | split | reason | detail |", "|---|---|---|---|"]
        lines += [f"| {f['path']} | {f['split']} | {f['reason']} | {f['detail']} |" for f in report["files"][:max_files]]
        more = report["n_excluded"] - max_files
        lines += ["", (f"{more} more not shown; " if more > 0 else "") + "the full list is in `data_report.json`. "
                  "Run with `--strict` to stop with an error instead of excluding bad files."]
    if report.get("notes"):
        lines += ["", "Kept but converted: " + ", ".join(f"{k}: {v}" for k, v in report["notes"].items()) + "."]
    if report.get("excluded_by_label"):
        lines += ["", "Left out by label (not a class of this task): "
                  + ", ".join(f"{why}: {n}" for why, n in report["excluded_by_label"].items()) + "."]
    return "\n".join(lines)


def write_data_report(report, path):
    """Write the report as JSON (typically `output_dir/data_report.json`).

    Args:
        report: `data_report` output.
        path: the JSON file; parent folders are created.

    Returns:
        The path as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(report, indent=2, default=str))
    return path


def raise_if_strict(report):
    """Raise `BadAudioError` naming each excluded file and its reason; do nothing when none was excluded.

    Args:
        report: `data_report` output.

    Raises:
        BadAudioError: any file was excluded.
    """
    if report["n_excluded"]:
        listing = "\n".join(f"  {f['path']}: {f['reason']} ({f['detail']})" for f in report["files"])
        raise BadAudioError(f"{report['n_excluded']} bad audio files (--strict):\n{listing}")

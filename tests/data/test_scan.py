import json
import os
from functools import partial

import numpy as np
import pytest
import soundfile as sf

from ser_hf.data import scan as validation
from ser_hf.data.scan import (
    BadAudioError,
    data_report,
    partition_rows,
    raise_if_strict,
    report_markdown,
    scan_file,
    scan_files,
    write_data_report,
)
from tests.conftest import tone

_tone = partial(tone, noise=0.01)  # the scan cases' 220 Hz tone, with half conftest's default noise


def make_cases(d):
    """One real file per case; returns {name: (path, expected status)}."""
    cases = {}

    def add(name, status, data=None, sr=16_000, **kw):
        path = d / f"{name}.wav"
        if data is not None:
            sf.write(path, data, sr, **kw)
        cases[name] = (path, status)
        return path

    add("good", "ok", _tone(0.5, 16_000))
    add("stereo", "ok", _tone(0.5, 44_100, channels=2), sr=44_100)
    add("text", "unreadable").write_text("this is not audio\n")
    add("lfs", "unreadable").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 123456\n")
    add("header_only", "empty", np.zeros(0, np.float32))
    full = add("truncated", "truncated", _tone(2.0, 16_000)).read_bytes()
    (d / "truncated.wav").write_bytes(full[: 44 + 10_000])  # header still claims 2 s
    full = add("truncated_mid_sample", "truncated", _tone(2.0, 16_000)).read_bytes()
    (d / "truncated_mid_sample.wav").write_bytes(full[: 44 + 10_001])  # ffmpeg fails on the half sample
    # The tolerance is 5 % of the header's duration (0.1 s of 2 s): 6 % missing is truncation, 4 % is not.
    for name, status, missing in (("truncated_6_percent", "truncated", 0.06), ("short_by_4_percent", "ok", 0.04)):
        full = add(name, status, _tone(2.0, 16_000), subtype="PCM_16").read_bytes()
        data_start = len(full) - 2 * 32_000  # 2 s of 16-bit mono samples end the file
        (d / f"{name}.wav").write_bytes(full[: data_start + 2 * round(32_000 * (1 - missing))])
    add("short", "too_short", _tone(0.5, 16_000)[:100])
    # min_samples counts samples after resampling to 16 kHz: 1000 samples at 48 kHz are 333 (too short),
    # 300 samples at 8 kHz are 600 (enough).
    add("short_48k", "too_short", _tone(1.0, 48_000)[:1000], sr=48_000)
    add("enough_8k", "ok", _tone(1.0, 8_000)[:300], sr=8_000)
    nan = _tone(0.5, 16_000).astype(np.float32)
    nan[1000] = np.nan
    add("nan", "non_finite", nan, subtype="FLOAT")
    add("zeros", "silent", np.zeros(8000, np.float32))
    add("long", "too_long", _tone(31, 8_000), sr=8_000)
    return cases


@pytest.fixture
def cases(tmp_path):
    return make_cases(tmp_path)


def test_each_bad_file_gets_its_reason(cases):
    for name, (path, expected) in cases.items():
        res = scan_file(path)
        assert res.status == expected, (name, res)
        assert (res.detail == "") == (expected == "ok"), (name, res.detail)
    good = scan_file(cases["good"][0])
    assert good.notes == [] and good.sample_rate == 16_000 and good.duration == pytest.approx(0.5)
    stereo = scan_file(cases["stereo"][0])
    assert stereo.notes == ["multichannel", "resampled"] and stereo.channels == 2
    assert "git lfs pull" in scan_file(cases["lfs"][0]).detail
    assert scan_file(cases["text"][0]).duration == 0.0
    truncated = scan_file(cases["truncated"][0])
    assert "header says 2.00 s" in truncated.detail and truncated.duration == pytest.approx(0.3125)
    just_past = scan_file(cases["truncated_6_percent"][0])
    assert just_past.detail == "header says 2.00 s, data holds 1.88 s"
    assert scan_file(cases["short_by_4_percent"][0]).duration == pytest.approx(1.92)  # kept, at its real length
    assert scan_file(cases["short_48k"][0]).detail == "1000 samples at 48000 Hz, fewer than 400 at 16000 Hz"
    # Thresholds are parameters: the long clip passes without a limit, the short one with a lower minimum.
    assert scan_file(cases["long"][0], max_seconds=None).status == "ok"
    assert scan_file(cases["short"][0], min_samples=50).status == "ok"


def _rows(cases):
    labels = {"good": "happy", "stereo": "sad", "text": "happy", "nan": "sad", "zeros": "sad", "short": "happy"}
    return [{"path": str(cases[n][0]), "label": lab} for n, lab in labels.items()]


def test_partition_and_report_count_per_reason_split_and_class(cases, tmp_path):
    rows = _rows(cases)
    results = scan_files([r["path"] for r in rows], workers=1, progress=False)
    kept, excluded = partition_rows(rows, results)
    assert [r["path"] for r in kept] == [str(cases["good"][0]), str(cases["stereo"][0])]
    assert kept[0]["duration"] > 0 and kept[0]["duration"] == results[kept[0]["path"]].duration  # reused, not re-read
    assert {r["reason"] for r in excluded} == {"unreadable", "non_finite", "silent", "too_short"}
    assert all(r["detail"] for r in excluded)
    report = data_report({"train": excluded[:2], "test": excluded[2:]}, notes_count={"resampled": 1})
    assert report["n_excluded"] == 4
    assert report["by_reason"] == {"unreadable": 1, "too_short": 1, "non_finite": 1, "silent": 1}
    assert report["by_split"] == {"train": {"unreadable": 1, "non_finite": 1}, "test": {"silent": 1, "too_short": 1}}
    assert report["by_class"] == {"happy": 2, "sad": 2}
    md = report_markdown(report)
    for reason in report["by_reason"]:
        assert f"| {reason} |" in md
    assert "data_report.json" in md and "--strict" in md and "resampled: 1" in md
    saved = json.loads(write_data_report(report, tmp_path / "out" / "data_report.json").read_text())
    assert saved["by_reason"] == report["by_reason"] and len(saved["files"]) == 4
    with pytest.raises(KeyError):
        partition_rows([{"path": "never_scanned.wav"}], results)


def test_markdown_lists_at_most_20_files_and_says_where_the_rest_are():
    files = [{"path": f"f{i}.wav", "label": 0, "reason": "silent", "detail": "peak 0"} for i in range(25)]
    md = report_markdown(data_report({"train": files}))
    assert "f19.wav" in md and "f20.wav" not in md and "5 more not shown" in md
    assert "nothing was excluded" in report_markdown(data_report({"train": []}))


def test_strict_mode_raises_naming_each_file(cases):
    rows = _rows(cases)
    _, excluded = partition_rows(rows, scan_files([r["path"] for r in rows], workers=1, progress=False))
    with pytest.raises(BadAudioError) as info:
        raise_if_strict(data_report({"train": excluded}))
    for row in excluded:
        assert f"{row['path']}: {row['reason']}" in str(info.value)
    raise_if_strict(data_report({"train": []}))  # nothing excluded: no error


def test_process_pool_matches_inline_scan(cases):
    paths = [p for p, _ in cases.values()]
    pooled = scan_files(paths, workers=2, progress=False)
    assert list(pooled) == [str(p) for p in paths]
    assert {k: v.status for k, v in pooled.items()} == {str(p): s for p, s in cases.values()}


def test_cache_skips_unchanged_files_and_rescans_changed_ones(tmp_path, monkeypatch):
    paths = [tmp_path / f"{i}.wav" for i in range(4)]
    for i, p in enumerate(paths):
        sf.write(p, _tone(0.2, 16_000, seed=i), 16_000)
    calls = []
    real = validation.scan_file
    monkeypatch.setattr(validation, "scan_file", lambda p, **kw: calls.append(p) or real(p, **kw))
    cache = tmp_path / "cache" / "scan.json"
    first = scan_files(paths, workers=1, cache_path=cache, progress=False)
    assert len(calls) == 4 and all(r.status == "ok" for r in first.values())

    calls.clear()
    second = scan_files(paths, workers=1, cache_path=cache, progress=False)
    assert calls == [] and second == first

    # Same size, new content: only the mtime tells, and only that file is decoded again.
    sf.write(paths[1], np.zeros(3200), 16_000)
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = scan_files(paths, workers=1, cache_path=cache, progress=False)
    assert calls == [str(paths[1])] and third[str(paths[1])].status == "silent"

    calls.clear()  # other thresholds invalidate every entry
    scan_files(paths, min_samples=500, workers=1, cache_path=cache, progress=False)
    assert len(calls) == 4
    assert not list(cache.parent.glob("*.tmp*"))

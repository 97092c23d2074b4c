"""Emotion timeline files: `<stem>_timeline.csv`, `.json` and `.png` for each classified file.

    timeline = emotion_timeline(classifier, "talk.wav")
    save_timeline(timeline, "timelines/")   # timelines/talk_timeline.csv, .json, .png
"""

import csv
import json
from pathlib import Path

from ser_hf.data.audio import SAMPLE_RATE, decode_16k_mono
from ser_hf.reporting.plots import plot_emotion_timeline
from ser_hf.storage import atomic_write, write_text_atomic


def timeline_stem(audio_path, taken):
    """`<file stem>_timeline`, with `_2`, `_3`, ... when another input of the same batch already took the name.

    Args:
        audio_path: the classified file.
        taken: set of stems already used in this output folder; the returned stem is added to it.

    Returns:
        str.
    """
    base = f"{Path(audio_path).stem}_timeline"
    stem, n = base, 1
    while stem in taken:
        n += 1
        stem = f"{base}_{n}"
    taken.add(stem)
    return stem


def save_timeline(timeline, out_dir, stem=None, waveform=True):
    """Write a timeline's CSV, JSON and PNG (waveform above the timeline) into `out_dir`.

    Args:
        timeline: `ser_hf.inference.timeline.emotion_timeline` output without an error.
        out_dir: folder to write into (created when missing).
        stem: file name without extension; default `<audio file stem>_timeline`.
        waveform: draw the file's waveform above the timeline (decodes the file once more).

    Returns:
        dict: "csv", "json", "png" -> Path.
    """
    out_dir = Path(out_dir)
    stem = stem or f"{Path(timeline['path']).stem}_timeline"
    samples = decode_16k_mono(timeline["path"]) if waveform else None
    title = f"{Path(timeline['path']).name}: {timeline['window_seconds']:g} s windows every " \
            f"{timeline['window_seconds'] - timeline['overlap_seconds']:g} s"
    return {
        "csv": write_timeline(timeline, out_dir / f"{stem}.csv"),
        "json": write_timeline(timeline, out_dir / f"{stem}.json"),
        "png": plot_emotion_timeline(timeline["windows"], timeline["labels"], out_dir / f"{stem}.png",
                                     samples=samples, sample_rate=SAMPLE_RATE, title=title),
    }


def write_timeline(timeline, path):
    """Write a timeline as JSON (the whole dict) or CSV (one row per window, one column per class), by extension.

    Args:
        timeline: `emotion_timeline` output.
        path: a .json file, or any other name for CSV. Parent folders are created.

    Returns:
        The path as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        write_text_atomic(path, json.dumps(timeline, indent=2))
        return path
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start", "end", "label", "score", "rms_dbfs", *timeline["labels"]])
        for w in timeline["windows"]:
            scores = w["scores"] or {}
            writer.writerow([w["start"], w["end"], w["label"], "" if w["score"] is None else f"{w['score']:.4f}",
                             "" if w["rms_dbfs"] is None else w["rms_dbfs"],
                             *("" if name not in scores else f"{scores[name]:.4f}" for name in timeline["labels"])])
    return path

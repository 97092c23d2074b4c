"""Classify audio files with `pipeline("audio-classification")`, one clear result or error per file."""

import csv
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# What ffmpeg (the pipeline's decoder for file paths) is expected to read; other files in a folder are skipped.
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".wma", ".aiff", ".aif"}


def collect_audio_files(inputs):
    """Expand files and folders (recursively) into a sorted list of audio files.

    Args:
        inputs: paths to audio files or folders.

    Returns:
        list of Path. A named file is kept whatever its extension; in folders only audio extensions count.
    """
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                                and not p.name.startswith("._")))
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return files


def load_classifier(model_dir, device=None):
    """`pipeline("audio-classification")` on a local output dir or a Hub id."""
    from transformers import pipeline

    return pipeline("audio-classification", model=str(model_dir), device=device)


def classify_files(classifier, files, top_k=3):
    """Run the pipeline file by file so that one unreadable file gives an error row, not a crashed job.

    Returns:
        list of dicts: path, label, score, top_k [(label, score), ...], error (None when it worked).
    """
    rows = []
    for path in files:
        try:
            scores = classifier(str(path), top_k=top_k)
        except Exception as err:  # noqa: BLE001 - reported per file; the batch goes on
            logger.warning("%s: %s", path, err)
            rows.append({"path": str(path), "label": None, "score": None, "top_k": [], "error": str(err)})
            continue
        rows.append({
            "path": str(path),
            "label": scores[0]["label"],
            "score": float(scores[0]["score"]),
            "top_k": [(s["label"], float(s["score"])) for s in scores],
            "error": None,
        })
    return rows


def format_table(rows):
    """Plain-text table: file, prediction, confidence, the other top-k labels."""
    width = max([len("file")] + [len(Path(r["path"]).name) for r in rows])
    lines = [f"{'file':<{width}}  {'emotion':<12}{'score':>7}  others"]
    for r in rows:
        if r["error"]:
            lines.append(f"{Path(r['path']).name:<{width}}  ERROR: {r['error']}")
            continue
        others = ", ".join(f"{label} {score:.2f}" for label, score in r["top_k"][1:])
        lines.append(f"{Path(r['path']).name:<{width}}  {r['label']:<12}{r['score']:>7.3f}  {others}")
    return "\n".join(lines)


def write_predictions(rows, path):
    """Write rows as CSV (flat: top-k joined) or JSON, by the file's extension."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2))
        return path
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "score", "top_k", "error"])
        for r in rows:
            top = ";".join(f"{label}:{score:.4f}" for label, score in r["top_k"])
            writer.writerow([r["path"], r["label"] or "", "" if r["score"] is None else f"{r['score']:.4f}", top,
                             r["error"] or ""])
    return path

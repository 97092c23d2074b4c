import csv
import json
from pathlib import Path

from ser_hf.storage import atomic_write, write_text_atomic


def _dimension_names(rows):
    """The output names of a regression model's rows (`--task dimensional`), in id order, or None."""
    return next((list(r["dimensions"]) for r in rows if r.get("dimensions")), None)


def _format_dimensional(rows, names, width):
    lines = [f"{'file':<{width}}  values (0-1 scale of the training ratings)"]
    for r in rows:
        if r["error"]:
            lines.append(f"{Path(r['path']).name:<{width}}  ERROR: {r['error']}")
            continue
        if not r.get("dimensions"):  # answered without the model: "no speech detected"
            lines.append(f"{Path(r['path']).name:<{width}}  {r['label']}")
            continue
        chunks = f"  [{r['chunks']} windows over {r['seconds']:.0f} s]" if r["chunks"] > 1 else ""
        values = " ".join(f"{name} {r['dimensions'][name]:.2f}" for name in names)
        lines.append(f"{Path(r['path']).name:<{width}}  {values}{chunks}")
    return "\n".join(lines)


def format_table(rows):
    """Plain-text table: file, prediction, confidence, the other top-k labels (and windows when chunked).

    A regression model's rows (`--task dimensional`) read "arousal 0.62 dominance 0.41 valence 0.55" instead.

    Args:
        rows: `classify_files` output.

    Returns:
        The table, one line per file (errors say ERROR and why; a file without speech, "no speech detected").
    """
    width = max([len("file")] + [len(Path(r["path"]).name) for r in rows])
    names = _dimension_names(rows)
    if names is not None:
        return _format_dimensional(rows, names, width)
    lines = [f"{'file':<{width}}  {'emotion':<12}{'score':>7}  others"]
    for r in rows:
        if r["error"]:
            lines.append(f"{Path(r['path']).name:<{width}}  ERROR: {r['error']}")
            continue
        if r["score"] is None:  # answered without the model: "no speech detected" (`inference.classify`)
            lines.append(f"{Path(r['path']).name:<{width}}  {r['label']}")
            continue
        others = ", ".join(f"{label} {score:.2f}" for label, score in r["top_k"][1:])
        chunks = f"  [{r['chunks']} windows over {r['seconds']:.0f} s]" if r["chunks"] > 1 else ""
        # A --task multitask model's intensity (ser_hf.evaluation.intensity.add_intensity_to_rows).
        intensity = f"  intensity: {r['intensity']} {r['intensity_score']:.2f}" if r.get("intensity") else ""
        lines.append(f"{Path(r['path']).name:<{width}}  {r['label']:<12}{r['score']:>7.3f}  {others}{chunks}"
                     + intensity)
    return "\n".join(lines)


def write_predictions(rows, path):
    """Write rows as CSV (flat: top-k joined) or JSON, by the file's extension.

    A regression model's rows (`--task dimensional`) have one CSV column per output (arousal, dominance, valence)
    instead of label, score and top_k; in JSON each row keeps its `dimensions` object.

    Args:
        rows: `classify_files` output.
        path: a .json file, or any other name for CSV.

    Returns:
        The path as a Path.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        write_text_atomic(path, json.dumps(rows, indent=2))
        return path
    names = _dimension_names(rows)
    if names is not None:
        return _write_dimensional_csv(rows, names, path)
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        intensity = any("intensity" in r for r in rows)  # a --task multitask model's extra columns
        writer.writerow(["path", "label", "score", "top_k", "seconds", "chunks", "error"]
                        + (["intensity", "intensity_score"] if intensity else []))
        for r in rows:
            top = ";".join(f"{label}:{score:.4f}" for label, score in r["top_k"])
            score = r.get("intensity_score")
            extra = [r.get("intensity") or "", "" if score is None else f"{score:.4f}"] if intensity else []
            writer.writerow([r["path"], r["label"] or "", "" if r["score"] is None else f"{r['score']:.4f}", top,
                             "" if r["seconds"] is None else r["seconds"], r["chunks"], r["error"] or ""] + extra)
    return path


def _write_dimensional_csv(rows, names, path):
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *names, "seconds", "chunks", "error"])
        for r in rows:
            values = r.get("dimensions") or {}
            # No values and no error: the voice-activity check's "no speech detected" says why, in the last column.
            why = r["error"] or ("" if values else r.get("label") or "")
            writer.writerow([r["path"], *("" if name not in values else f"{values[name]:.6f}" for name in names),
                             "" if r["seconds"] is None else r["seconds"], r["chunks"], why])
    return path

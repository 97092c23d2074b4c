import csv
import json
from pathlib import Path


def format_table(rows):
    """Plain-text table: file, prediction, confidence, the other top-k labels (and windows when chunked).

    Args:
        rows: `classify_files` output.

    Returns:
        The table, one line per file (errors say ERROR and why).
    """
    width = max([len("file")] + [len(Path(r["path"]).name) for r in rows])
    lines = [f"{'file':<{width}}  {'emotion':<12}{'score':>7}  others"]
    for r in rows:
        if r["error"]:
            lines.append(f"{Path(r['path']).name:<{width}}  ERROR: {r['error']}")
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

    Args:
        rows: `classify_files` output.
        path: a .json file, or any other name for CSV.

    Returns:
        The path as a Path.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2))
        return path
    with path.open("w", newline="") as handle:
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

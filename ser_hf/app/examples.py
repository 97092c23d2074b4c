"""Example clips for the app: clips of the demo corpus the model did not train on, and one long file made of them.

A model trained by `bash run.sh demo` records the clips it was evaluated on (`predictions_validation.csv`, paths
relative to the corpus folder in `data_args.json`): the examples are the first of those per emotion, so a user
clicking one sees the model on speakers it never heard. Without that record, one clip per emotion of the demo
corpus' last actor is used when the corpus is on disk; otherwise there are no examples.
"""

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_hf.corpora.registry import get_corpus
from ser_hf.data.audio import SAMPLE_RATE, decode_16k_mono
from ser_hf.labels import RAVDESS_EMOTIONS


def demo_examples(model_dir=None, data_dir=None, limit=8):
    """Up to `limit` demo clips, one per emotion, held-out ones when the model's run says which.

    Args:
        model_dir: the model's output folder (a Hub id or a folder without a run record is fine: no record).
        data_dir: the demo corpus folder; default the run's recorded one, else the demo's default `data/demo`.
        limit: most clips returned.

    Returns:
        list of Path to existing files, in emotion order.
    """
    held_out = _held_out_clips(model_dir, data_dir) if model_dir else []
    if held_out:
        return held_out[:limit]
    corpus = Path(data_dir or get_corpus("demo").default_data_dir)
    # Actor 24 is in the demo recipe's held-out fold; normal intensity, first statement and repetition.
    clips = [corpus / "Actor_24" / f"03-01-{code:02d}-01-01-01-24.wav" for code in range(1, len(RAVDESS_EMOTIONS) + 1)]
    return [clip for clip in clips if clip.is_file()][:limit]


def _held_out_clips(model_dir, data_dir):
    model_dir = Path(model_dir)
    try:
        recorded = json.loads((model_dir / "data_args.json").read_text())
        rows = list(csv.DictReader((model_dir / "predictions_validation.csv").open()))
    except (OSError, ValueError):
        return []
    root = Path(data_dir or recorded.get("data_dir") or "")
    if rows and "true" not in rows[0]:  # a --task dimensional run (true_<dimension> columns): no emotions to spread
        return [root / row["path"] for row in rows if (root / row["path"]).is_file()]
    first = {}
    for row in rows:
        clip = root / row["path"]
        if row.get("true") and row["true"] not in first and clip.is_file():
            first[row["true"]] = clip
    order = {name: i for i, name in enumerate(RAVDESS_EMOTIONS)}
    return [first[label] for label in sorted(first, key=lambda name: order.get(name, len(order)))]


def example_label(path):
    """What an example button says: the emotion and actor of a RAVDESS-named clip, else the file name.

    Args:
        path: an example file.

    Returns:
        str, e.g. "angry (Actor_24)".
    """
    parts = Path(path).stem.split("-")
    if len(parts) == 7 and all(p.isdigit() for p in parts) and 1 <= int(parts[2]) <= len(RAVDESS_EMOTIONS):
        return f"{RAVDESS_EMOTIONS[int(parts[2]) - 1]} (Actor_{parts[6]})"
    return Path(path).name


def long_example(clips, path, pause_seconds=0.5):
    """One file of `clips` in a row with pauses between them: an example long enough for a timeline.

    Args:
        clips: audio files, decoded at 16 kHz mono.
        path: the wav to write (16-bit PCM).
        pause_seconds: digital silence between clips (a pause shorter than a timeline window is not gated).

    Returns:
        The path as a Path.
    """
    pause = np.zeros(round(pause_seconds * SAMPLE_RATE), dtype=np.float32)
    parts = [part for clip in clips for part in (decode_16k_mono(clip), pause)][:-1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path

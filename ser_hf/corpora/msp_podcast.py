"""MSP-Podcast (UT Dallas MSP lab): the corpus of audeering's model and the Odyssey 2024 challenge.

A release (licensed: https://ecs.utdallas.edu/research/researchgroups/msp/MSP-Podcast.html, not downloadable here)
holds 100k+ podcast segments with one consensus file:

    Labels/labels_consensus.csv   FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
    Audios/<FileName>             the audio (16 kHz)

Older releases, and EmoBox, use `label/labels_concensus.json` (sic; {FileName: {EmoClass, ...}}) and `Audio/`:
both are read. The splits are the release's own, not ours: Train, Development (or Validation), Test1 and, where the
release has them, Test2 and Test3, each evaluated and reported on its own. The 8 categories A, S, H, U, F, D, C, N
are the classes; O (other) and X (no agreement) are excluded and counted. The arousal, valence and dominance
ratings (1-7) are read too. SpkrID "Unknown" is no speaker: such a clip's speaker is unknown, and a run with any
of them is not called speaker-independent.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

from ser_hf.corpora.files import Rows
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

MSP_PODCAST_CODES = {"N": "neutral", "H": "happy", "S": "sad", "A": "angry", "U": "surprised", "F": "fearful",
                     "D": "disgust", "C": "contempt"}
MSP_PODCAST_LABELS = tuple(MSP_PODCAST_CODES.values())
MSP_PODCAST_DIMENSION_RANGE = (1.0, 7.0)
MSP_PODCAST_LICENSE = "other"  # the MSP-Podcast academic licence, obtained from UT Dallas
# The release's split names -> ours (the reported splits beside train and validation).
SPLITS = {"train": "train", "development": "validation", "validation": "validation", "test1": "test",
          "test2": "test2", "test3": "test3"}
_UNKNOWN_SPEAKERS = ("unknown", "")


def _label_file(root: Path) -> Path:
    for candidate in (root / "Labels" / "labels_consensus.csv", root / "label" / "labels_concensus.json",
                      root / "Labels" / "labels_consensus.json", root / "labels_consensus.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MSP-Podcast: no Labels/labels_consensus.csv (nor label/labels_concensus.json) under "
                            f"{root}. Request the corpus from the MSP lab (UT Dallas) and pass its folder as "
                            "--data_dir.")


def _records(label_file: Path) -> list[dict]:
    if label_file.suffix == ".json":
        blob = json.loads(label_file.read_text())
        return [{"FileName": name, **fields} for name, fields in blob.items()]
    with open(label_file, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _audio_folder(root: Path) -> Path:
    for name in ("Audios", "Audio", "audio", "Audios_16k"):
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"MSP-Podcast: no Audios/ (nor Audio/) folder under {root}")


def load_msp_podcast(data_dir, every_rated=False) -> Rows:
    """Rows of the 8-class task with the release's own split (`split`: train, validation, test, test2, test3).

    O (other) and X (no agreement) are left out and counted, unless `every_rated` (`--task dimensional`): every
    segment has arousal / valence / dominance ratings, and the attribute task uses them all (the code is the label,
    which that task does not read).

    Raises:
        FileNotFoundError: no label file or audio folder, or listed audio missing.
        UsageError: a label file without the columns a release has, or an unknown split name.
    """
    root = Path(data_dir)
    label_file = _label_file(root)
    audio = _audio_folder(root)
    rows, excluded, missing, splits = Rows(), Counter(), [], Counter()
    for record in _records(label_file):
        try:
            name, code, split = record["FileName"], str(record["EmoClass"]).strip(), str(record["Split_Set"])
        except KeyError as err:
            raise UsageError(f"{label_file} has no column {err} (a release has FileName, EmoClass, EmoAct, EmoVal, "
                             "EmoDom, SpkrID, Gender, Split_Set)") from None
        ours = SPLITS.get(split.strip().lower())
        if ours is None:
            raise UsageError(f"{label_file}: Split_Set {split!r} of {name} is none of Train, Development, Test1, "
                             "Test2, Test3")
        label = MSP_PODCAST_CODES.get(code) or (code if every_rated else None)
        if label is None:
            excluded[f"{code} ({'other' if code == 'O' else 'no agreement' if code == 'X' else 'unknown code'})"] += 1
            continue
        path = audio / name
        if not path.is_file():
            missing.append(name)
            continue
        speaker = str(record.get("SpkrID", "")).strip()
        rows.append({"path": str(path.resolve()), "label": label, "split": ours,
                     "speaker": None if speaker.lower() in _UNKNOWN_SPEAKERS else f"msp{speaker}",
                     "gender": str(record.get("Gender", "")).strip().lower() or None,
                     "arousal": float(record["EmoAct"]), "valence": float(record["EmoVal"]),
                     "dominance": float(record["EmoDom"])})
        splits[ours] += 1
    if missing:
        raise FileNotFoundError(f"MSP-Podcast: {len(missing)} files listed in {label_file.name} are not in {audio} "
                                f"(e.g. {', '.join(missing[:3])}): is the copy complete?")
    rows.excluded = dict(sorted(excluded.items()))
    logger.info("MSP-Podcast: %d clips (%s); excluded by label: %s", len(rows),
                ", ".join(f"{split} {n}" for split, n in splits.items()),
                ", ".join(f"{why} {n}" for why, n in sorted(excluded.items())) or "none")
    return rows

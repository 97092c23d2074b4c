"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005): 10 actors, 535 clips.

The free release (http://emodb.bilderbar.info/download/download.zip) is downloaded when the folder is empty, resumable
like RAVDESS, and extracted next to the zip: `wav/03a01Fa.wav` and friends. A file name says it all: speaker =
characters 1-2 (03, 08, 09, ..., 16), text = 3-5 (a01 ... b10), emotion = character 6, version = 7 (a, b, ...):

    W anger (Wut)  L boredom (Langeweile)  E disgust (Ekel)  A fear (Angst)  F happiness (Freude)
    T sadness (Trauer)  N neutral

The protocol is speaker folds (default 5 folds of 2 actors, gender-balanced: one actress and one actor each).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

from ser_hf.corpora.download import download_file, is_extracted, md5sum, safe_extract_zip
from ser_hf.corpora.files import SkippedFiles, walk_files
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

EMODB_URL = "http://emodb.bilderbar.info/download/download.zip"
EMODB_ZIP_NAME = "download.zip"
EMODB_LICENSE = "other"  # free to download; the terms and the citation are on the data card
EMODB_CLIPS = 535
_EMOTIONS = {"N": "neutral", "W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad"}
EMODB_LABELS = tuple(_EMOTIONS.values())
# The actors, from the corpus documentation (speaker number: gender, age).
EMODB_SPEAKERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
                  "13": "female", "14": "female", "15": "male", "16": "female"}
_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z]?)\.wav$")


def parse_emodb_filename(name: str) -> dict | None:
    """{speaker, text, emotion, version} of an EmoDB clip name, or None for a name not of that form.

    Raises:
        UsageError: a name of the form whose speaker or emotion letter EmoDB does not have.
    """
    match = _NAME.match(name)
    if not match:
        return None
    speaker, text, letter, version = match.groups()
    if speaker not in EMODB_SPEAKERS or letter not in _EMOTIONS:
        raise UsageError(f"{name}: speaker {speaker} / emotion letter {letter} is not EmoDB's (speakers "
                         f"{', '.join(EMODB_SPEAKERS)}; letters {''.join(_EMOTIONS)}); rename or remove the file")
    return {"speaker": speaker, "text": text, "emotion": _EMOTIONS[letter], "version": version}


def load_emodb(data_dir) -> list[dict]:
    """Rows of every EmoDB clip below `data_dir` (its wav/ folder, wherever the zip was extracted).

    Raises:
        FileNotFoundError: no EmoDB clip there.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"EmoDB folder {root} does not exist (bash run.sh emodb downloads it there)")
    rows, skipped, seen = [], SkippedFiles(root), set()
    for path in walk_files(root, skip_dirs=("__MACOSX",)):
        if path.name.startswith("._") or path.suffix.lower() != ".wav":
            continue
        meta = parse_emodb_filename(path.name)
        if meta is None:
            skipped.add("names not of the EmoDB form", path)
            continue
        if path.name in seen:
            skipped.add("duplicate clips (same name in another folder)", path)
            continue
        seen.add(path.name)
        rows.append({"path": str(path.resolve()), "label": meta["emotion"], "speaker": f"emodb{meta['speaker']}",
                     "gender": EMODB_SPEAKERS[meta["speaker"]], "text": meta["text"]})
    skipped.log(logger, "EmoDB")
    if not rows:
        raise FileNotFoundError(f"No EmoDB clips (wav/03a01Fa.wav and the like) under {root} (found "
                                f"{skipped.describe()}); `bash run.sh emodb` downloads the release there")
    if len(rows) != EMODB_CLIPS:
        logger.warning("EmoDB under %s: %d clips, where the release has %d: a partial or modified copy?", root,
                       len(rows), EMODB_CLIPS)
    logger.info("EmoDB: %d clips of %d speakers (%s)", len(rows), len({r["speaker"] for r in rows}),
                ", ".join(f"{label} {n}" for label, n in Counter(r["label"] for r in rows).most_common()))
    return rows


def _has_clips(root: Path) -> bool:
    return root.is_dir() and any(_NAME.match(p.name) for p in walk_files(root) if p.suffix.lower() == ".wav")


def prepare_emodb(data_dir: str | os.PathLike, download: bool = True, url: str = EMODB_URL) -> list[dict]:
    """Make sure EmoDB is in `data_dir` (downloading and extracting the free release if allowed) and load it.

    Idempotent and resumable as `prepare_ravdess`: a folder holding the clips is just loaded; a partial download
    resumes, a partial extraction is redone. ser_hf knows no checksum of the release to check the zip against (none
    could be looked up offline): the zip is checked by what it holds (`load_emodb` counts the 535 clips) and its md5
    is logged, so one copy can be compared with another.

    Raises:
        FileNotFoundError: the corpus is missing and `download` is False.
    """
    data_dir = Path(data_dir).expanduser()
    zip_path = data_dir / EMODB_ZIP_NAME
    part = zip_path.with_suffix(zip_path.suffix + ".part")
    if not (zip_path.exists() or part.exists()) and _has_clips(data_dir):
        return load_emodb(data_dir)
    if not is_extracted(zip_path, data_dir):
        if download:
            download_file(url, zip_path, md5=None)
            logger.info("EmoDB: %s has md5 %s", zip_path, md5sum(zip_path))
        elif not zip_path.exists():
            raise FileNotFoundError(f"EmoDB clips not found under {data_dir} and --download false: download "
                                    f"{url} and extract it there, or drop --download false")
        safe_extract_zip(zip_path, data_dir)
    return load_emodb(data_dir)

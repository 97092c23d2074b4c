"""CREMA-D loader: filename -> metadata rows, with the 21 emotion x level labels or the 6 emotions.

CREMA-D encodes each clip in its name, `ActorID_Sentence_Emotion_Level.wav` (e.g.
`1001_DFA_ANG_XX.wav`), so loading never decodes audio. Gender is not in the name: it comes from
the repository's `VideoDemographics.csv` when that file is found. See data_cards/cremad.md for the
corpus, its license (ODbL) and the counts a user should see.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

from ser_hf.corpora.files import DUPLICATES, LFS_SIGNATURE, SkippedFiles, walk_files
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

CREMAD_REPO_URL = "https://github.com/CheyneyComputerScience/CREMA-D"
CREMAD_LICENSE = "odbl"  # the Hub's licence id for the Open Data Commons Open Database License
CREMAD_EXPECTED_FILES = 7442
CREMAD_ACTORS = range(1001, 1092)  # 1001..1091, 91 actors
CREMAD_DEMOGRAPHICS_FILE = "VideoDemographics.csv"

# Sentence codes and texts as documented by the CREMA-D release.
CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}

# Emotion codes in code order (alphabetical); label ids of the 6-class task follow this order.
_EMOTION_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMAD_EMOTIONS = tuple(_EMOTION_CODES.values())
# Level codes: LO/MD/HI were recorded for sentence IEO only; XX (unspecified) is every other clip.
CREMAD_LEVELS = ("HI", "LO", "MD", "XX")
# The 21 classes present in the release, fixed by code: emotion in code order, then level in the
# (alphabetical) order of CREMAD_LEVELS; neutral exists at XX only. Ids never depend on which files
# a run happens to find.
CREMAD_LABELS_21 = tuple(
    f"{emotion}_{level.lower()}"
    for code, emotion in _EMOTION_CODES.items()
    for level in (("XX",) if code == "NEU" else CREMAD_LEVELS)
)
# The label sets by name (`labels=21` or `labels=6`, as int or str); the corpus registry offers these.
CREMAD_LABEL_SETS = {"21": CREMAD_LABELS_21, "6": CREMAD_EMOTIONS}
CREMAD_DEFAULT_LABEL_SET = "21"

_NAME_RE = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{2})(\.[A-Za-z0-9]+)?$")
_LFS_CHECK_FILES = 20
# Real clips are tens of kB; an LFS pointer is ~130 bytes. Only small files are opened.
_LFS_POINTER_MAX_BYTES = 1024


def cremad_labels(n: int | str) -> tuple[str, ...]:
    """The CREMA-D label set for a task size.

    Args:
        n: 21 or "21" (emotion x level, `CREMAD_LABELS_21`), 6 or "6" (emotions, `CREMAD_EMOTIONS`).

    Returns:
        The label names in id order.

    Raises:
        UsageError: n is not 21 or 6.
    """
    return CREMAD_LABEL_SETS[_label_set_key(n)]


def _label_set_key(n: int | str) -> str:
    key = None if isinstance(n, bool) else str(n).strip()
    if key not in CREMAD_LABEL_SETS:
        raise UsageError(f"CREMA-D has 21 (emotion x level) or 6 (emotion) labels, got labels={n!r}")
    return key


def cremad_label(emotion: str, level: str, n: int | str = CREMAD_DEFAULT_LABEL_SET) -> str:
    """The label of one clip: "angry_xx" for the 21-label task, "angry" for the 6-label task.

    Args:
        emotion: emotion name from `CREMAD_EMOTIONS`.
        level: level code ("HI", "LO", "MD", "XX").
        n: the label set, 21 or 6 (int or str).

    Returns:
        A name from `cremad_labels(n)`.

    Raises:
        UsageError: n is not 21 or 6, or the combination is not a CREMA-D class.
    """
    labels = cremad_labels(n)
    label = f"{emotion}_{level.lower()}" if labels is CREMAD_LABELS_21 else emotion
    if label not in labels:
        raise UsageError(f"{emotion!r} at level {level!r} is not one of the CREMA-D labels {labels}")
    return label


def parse_cremad_filename(name: str) -> dict | None:
    """Decode a CREMA-D file name.

    Args:
        name: a file name or path, e.g. `1001_DFA_ANG_XX.wav`. The extension is not checked here
            (the release also has .mp3 and .flv with the same fields).

    Returns:
        `{"actor": 1001, "sentence": "DFA", "emotion": "angry", "level": "XX"}` (codes upper case,
        emotion a name from `CREMAD_EMOTIONS`), or None when the name is not of the CREMA-D form.

    Raises:
        UsageError: the name has the CREMA-D form but a code that cannot occur (unknown sentence,
            emotion or level, actor outside 1001-1091, neutral at a level other than XX); the
            message names the file.
    """
    base = os.path.basename(name)
    match = _NAME_RE.match(base)
    if match is None:
        return None
    actor_s, sentence, emotion, level = match.group(1), *(g.upper() for g in match.groups()[1:4])
    actor = int(actor_s)
    problems = []
    if actor not in CREMAD_ACTORS:
        problems.append(f"actor {actor_s} (expected 1001-1091)")
    if sentence not in CREMAD_SENTENCES:
        problems.append(f"sentence {sentence} (expected one of {' '.join(CREMAD_SENTENCES)})")
    if emotion not in _EMOTION_CODES:
        problems.append(f"emotion {emotion} (expected one of {' '.join(_EMOTION_CODES)})")
    if level not in CREMAD_LEVELS:
        problems.append(f"level {level} (expected one of {' '.join(CREMAD_LEVELS)})")
    elif emotion == "NEU" and level != "XX":
        problems.append(f"neutral at level {level} (neutral is recorded at XX only)")
    if problems:
        raise UsageError(f"Invalid CREMA-D file name {name!r}: " + "; ".join(problems))
    return {"actor": actor, "sentence": sentence, "emotion": _EMOTION_CODES[emotion], "level": level}


def _howto() -> str:
    return (
        f"CREMA-D is distributed through the git-lfs repository {CREMAD_REPO_URL} "
        "(Open Database License, ODbL; contents under the Database Contents License). Install git-lfs, then "
        f"`git clone {CREMAD_REPO_URL}.git` and pass --data_dir pointing at the clone (or its AudioWAV folder, "
        "files like 1001_DFA_ANG_XX.wav)."
    )


def _lfs_pointers(paths: list[Path]) -> list[Path]:
    """Return which of up to `_LFS_CHECK_FILES` evenly spaced `paths` are git-lfs pointer files.

    Spreading the sample over the sorted list catches a partial `git lfs pull --include ...` as well
    as a clone without LFS, and reads at most a few kB.
    """
    if not paths:
        return []
    step = max(1, len(paths) // _LFS_CHECK_FILES)
    pointers = []
    for path in paths[::step][:_LFS_CHECK_FILES]:
        try:
            if path.stat().st_size > _LFS_POINTER_MAX_BYTES:
                continue
            with open(path, "rb") as handle:
                head = handle.read(len(LFS_SIGNATURE))
        except OSError:
            continue  # an unreadable file is the validation scan's business, not an LFS problem
        if head == LFS_SIGNATURE:
            pointers.append(path)
    return pointers


def _find_demographics(root: Path, found: list[Path]) -> Path | None:
    """`VideoDemographics.csv` found while walking `root`, else next to `root` (the clone when
    `root` is its AudioWAV folder)."""
    if found:
        return found[0]
    candidate = root.parent / CREMAD_DEMOGRAPHICS_FILE
    return candidate if candidate.is_file() else None


def read_demographics(path: str | os.PathLike) -> dict[int, str]:
    """Read actor genders from CREMA-D's `VideoDemographics.csv`.

    Args:
        path: the CSV (columns ActorID, Age, Sex, Race, Ethnicity).

    Returns:
        actor id -> "male" / "female" ("unknown" for any other Sex value).

    Raises:
        UsageError: the file lacks the ActorID or Sex column, or an ActorID is not an integer.
    """
    path = Path(path)
    # utf-8-sig: a CSV saved by Excel starts with a BOM that would otherwise glue onto "ActorID".
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("ActorID", "Sex") if c not in columns]
        if missing:
            raise UsageError(f"{path} lacks column(s) {', '.join(missing)}; columns present: {', '.join(columns)}")
        genders = {}
        for line, record in enumerate(reader, start=2):
            record = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
            try:
                actor = int(record["ActorID"])
            except ValueError:
                raise UsageError(f"{path} line {line}: ActorID {record['ActorID']!r} is not an integer") from None
            sex = record["Sex"].lower()
            genders[actor] = sex if sex in ("male", "female") else "unknown"
    return genders


def load_cremad(data_dir: str | os.PathLike, labels: int | str = CREMAD_DEFAULT_LABEL_SET) -> list[dict]:
    """List CREMA-D audio clips below `data_dir` as metadata rows.

    Walks every folder below `data_dir` (any depth, sorted, so the row order is reproducible) and
    keeps `.wav` files with CREMA-D names; skips the release's .mp3/.flv copies, macOS `._*` /
    `__MACOSX` metadata, hidden folders and other names, and logs how many of each it skipped. The
    same clip found twice is kept once. Audio is not decoded; a few small files are read to detect
    git-lfs pointers.

    Args:
        data_dir: folder containing the corpus (the repository clone or its AudioWAV folder).
        labels: the label set, 21 or "21" for emotion x level labels ("angry_hi", ..., "neutral_xx", ...),
            6 or "6" for emotions.

    Returns:
        Rows `{"path", "speaker", "actor", "gender", "sentence", "emotion", "level", "label"}`:
        absolute path, speaker "1001" (str), actor 1001 (int), gender "male"/"female" from
        `VideoDemographics.csv` (found under `data_dir` or next to it; "unknown" without it),
        sentence code, emotion name, level code, and the label from `cremad_labels(labels)`.

    Raises:
        UsageError: labels not 21 or 6, or a CREMA-D-form file name with an impossible code.
        FileNotFoundError: no CREMA-D .wav under `data_dir` (or it does not exist).
        UsageError: the .wav files are git-lfs pointer files (a clone or zip without LFS content).
    """
    cremad_labels(labels)  # fail on a bad label set before walking thousands of files
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"CREMA-D folder {root} does not exist. {_howto()}")
    skipped = SkippedFiles(root)
    clips, demographics_found = _find_clips(root, skipped)
    if not clips:
        raise FileNotFoundError(f"No CREMA-D .wav files under {root} (found {skipped.describe()}). {_howto()}")
    _raise_if_lfs_pointers(root, [path for path, _ in clips])
    demographics = _find_demographics(root, demographics_found)
    genders = _actor_genders(root, demographics)
    rows = [_cremad_row(path, meta, genders, labels) for path, meta in clips]
    if demographics is not None:
        _warn_actors_without_gender(rows, genders, demographics)
    skipped.log(logger, "CREMA-D")
    n_actors = len({row["actor"] for row in rows})
    if len(rows) != CREMAD_EXPECTED_FILES:
        logger.warning(
            "Found %d CREMA-D clips (%d actors) under %s, expected %d (the full AudioWAV release, 91 actors). "
            "A partial corpus changes the splits and the metrics.",
            len(rows), n_actors, root, CREMAD_EXPECTED_FILES,
        )
    else:
        logger.info("Found %d CREMA-D clips (%d actors) under %s", len(rows), n_actors, root)
    return rows


def _find_clips(root: Path, skipped: SkippedFiles) -> tuple[list[tuple[Path, dict]], list[Path]]:
    """The CREMA-D .wav clips below `root` with their parsed names (once per clip), and the demographics files
    found on the way; the other files are counted in `skipped`."""
    clips: list[tuple[Path, dict]] = []
    demographics: list[Path] = []
    seen: set[str] = set()
    for path in walk_files(root, skip_dirs=("__MACOSX",)):
        if path.name.startswith("._"):
            skipped.add("macOS metadata files (._*)", path)
            continue
        if path.name.startswith("."):
            continue  # .gitattributes and other hidden files are not corpus files
        if path.name == CREMAD_DEMOGRAPHICS_FILE:
            demographics.append(path)
            continue
        try:
            meta = parse_cremad_filename(path.name)
        except ValueError as err:
            raise UsageError(f"{err} (file {path})") from err
        reason = _skip_reason(path, meta, seen)
        if reason:
            skipped.add(reason, path)
        else:
            seen.add(path.stem.upper())
            clips.append((path, meta))
    return clips, demographics


def _skip_reason(path: Path, meta: dict | None, seen: set[str]) -> str | None:
    """Why a file is not a CREMA-D clip to load (a skip category), or None when it is one."""
    if meta is None:
        return "names not of the CREMA-D form"
    if path.suffix.lower() != ".wav":
        return f"CREMA-D {path.suffix.lower() or 'extensionless'} files (only .wav is used)"
    # parse_cremad_filename reads the codes case-insensitively, so a renamed-case copy is the same clip.
    if path.stem.upper() in seen:
        return DUPLICATES
    return None


def _raise_if_lfs_pointers(root: Path, paths: list[Path]) -> None:
    pointers = _lfs_pointers(paths)
    if pointers:
        raise UsageError(
            f"The CREMA-D .wav files under {root} are git-lfs pointer files, not audio "
            f"({len(pointers)} of the files checked, e.g. {pointers[0]}): the repository was downloaded "
            "without its LFS content (a GitHub zip, or a clone made without git-lfs). Fix: in the clone run "
            "`git lfs install && git lfs pull`, or clone again with git-lfs installed "
            f"(`git lfs install && git clone {CREMAD_REPO_URL}.git`)."
        )


def _actor_genders(root: Path, demographics: Path | None) -> dict[int, str]:
    """Actor id -> gender from the demographics file; empty, with one warning, without the file."""
    if demographics is None:
        # One warning, not one per clip; gender is only needed for gender-stratified folds.
        logger.warning(
            "No %s under %s or next to it: gender is 'unknown' for every CREMA-D clip, so speaker folds "
            "cannot be stratified by gender. Gender-stratified folds need %s from the CREMA-D repository "
            "(%s); put it in or next to the data folder.",
            CREMAD_DEMOGRAPHICS_FILE, root, CREMAD_DEMOGRAPHICS_FILE, CREMAD_REPO_URL,
        )
        return {}
    genders = read_demographics(demographics)
    logger.info("Actor genders from %s", demographics)
    return genders


def _cremad_row(path: Path, meta: dict, genders: dict[int, str], labels: int | str) -> dict:
    actor = meta["actor"]
    return {
        "path": str(path),
        "speaker": str(actor),
        "actor": actor,
        "gender": genders.get(actor, "unknown"),
        "sentence": meta["sentence"],
        "emotion": meta["emotion"],
        "level": meta["level"],
        "label": cremad_label(meta["emotion"], meta["level"], labels),
    }


def _warn_actors_without_gender(rows: list[dict], genders: dict[int, str], demographics: Path) -> None:
    absent = sorted({row["actor"] for row in rows if row["actor"] not in genders})
    if absent:
        logger.warning(
            "%d CREMA-D actors are not in %s (gender 'unknown'): %s",
            len(absent), demographics, ", ".join(map(str, absent[:10])) + (" ..." if len(absent) > 10 else ""),
        )

"""RAVDESS speech (audio-only) loader: filename -> metadata rows, plus an idempotent download.

RAVDESS encodes everything in the file name, `MM-VV-EE-II-SS-RR-AA.wav`
(modality, vocal channel, emotion, intensity, statement, repetition, actor), so loading
never decodes audio. See data_cards/ravdess.md for the corpus, its license and the counts
`prepare_ravdess` should give.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ser_hf.corpora.download import download_file, is_extracted, md5sum, safe_extract_zip
from ser_hf.corpora.files import DUPLICATES, SkippedFiles, walk_files
from ser_hf.errors import UsageError
from ser_hf.labels import RAVDESS_EMOTIONS

logger = logging.getLogger(__name__)

RAVDESS_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
RAVDESS_MD5 = "bc696df654c87fed845eb13823edef8a"
RAVDESS_ZIP_NAME = "Audio_Speech_Actors_01-24.zip"
RAVDESS_EXPECTED_FILES = 1440
RAVDESS_LICENSE = "cc-by-nc-sa-4.0"
RAVDESS_STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
# Emotion x intensity, the flat counterpart of `--task multitask` (and of CREMA-D's 21 labels): 15 labels, since
# neutral was recorded at normal intensity only. Fixed order, so label ids never depend on the files found.
RAVDESS_LABELS_15 = ("neutral_normal",) + tuple(
    f"{emotion}_{intensity}" for emotion in RAVDESS_EMOTIONS[1:] for intensity in ("normal", "strong")
)
# The label sets by name (`labels=8`, the default, or `labels=15`); the corpus registry offers these.
RAVDESS_LABEL_SETS = {"8": RAVDESS_EMOTIONS, "15": RAVDESS_LABELS_15}
RAVDESS_DEFAULT_LABEL_SET = "8"

_MODALITIES = {1: "full-AV", 2: "video-only", 3: "audio-only"}
_VOCAL_CHANNELS = {1: "speech", 2: "song"}
_INTENSITIES = {1: "normal", 2: "strong"}
# The sung half of RAVDESS was recorded without disgust (07) and surprised (08).
_SONG_EMOTIONS = frozenset(range(1, 7))
_NAME_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)(\.[A-Za-z0-9]+)?$")


def parse_ravdess_filename(name: str) -> dict | None:
    """Decode a RAVDESS file name.

    Args:
        name: a file name or path, e.g. `03-01-05-02-01-02-12.wav`. The extension is not checked
            here (the video release uses .mp4 with the same fields).

    Returns:
        `{"modality", "vocal_channel", "emotion", "intensity", "statement", "repetition", "actor"}`
        with modality in {"full-AV", "video-only", "audio-only"}, vocal_channel in {"speech", "song"},
        emotion a name from `RAVDESS_EMOTIONS`, intensity "normal"/"strong", and int statement (1, 2),
        repetition (1, 2) and actor (1..24). None when the name is not of the RAVDESS form.

    Raises:
        UsageError: the name has the RAVDESS form but a code that cannot occur (e.g. emotion 09,
            or neutral with strong intensity); the message names the file.
    """
    base = os.path.basename(name)
    match = _NAME_RE.match(base)
    if match is None:
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = (int(g) for g in match.groups()[:7])
    problems = []
    if modality not in _MODALITIES:
        problems.append(f"modality {modality:02d} (expected 01-03)")
    if channel not in _VOCAL_CHANNELS:
        problems.append(f"vocal channel {channel:02d} (expected 01-02)")
    if not 1 <= emotion <= len(RAVDESS_EMOTIONS):
        problems.append(f"emotion {emotion:02d} (expected 01-08)")
    elif channel == 2 and emotion not in _SONG_EMOTIONS:
        problems.append(f"emotion {emotion:02d} in a song file (song has emotions 01-06 only)")
    if intensity not in _INTENSITIES:
        problems.append(f"intensity {intensity:02d} (expected 01-02)")
    elif emotion == 1 and intensity == 2:
        problems.append("neutral with strong intensity (neutral is recorded at normal intensity only)")
    if statement not in RAVDESS_STATEMENTS:
        problems.append(f"statement {statement:02d} (expected 01-02)")
    if repetition not in (1, 2):
        problems.append(f"repetition {repetition:02d} (expected 01-02)")
    if not 1 <= actor <= 24:
        problems.append(f"actor {actor:02d} (expected 01-24)")
    if problems:
        raise UsageError(f"Invalid RAVDESS file name {name!r}: " + "; ".join(problems))
    return {
        "modality": _MODALITIES[modality],
        "vocal_channel": _VOCAL_CHANNELS[channel],
        "emotion": RAVDESS_EMOTIONS[emotion - 1],
        "intensity": _INTENSITIES[intensity],
        "statement": statement,
        "repetition": repetition,
        "actor": actor,
    }


def _is_macos_metadata(path: Path, root: Path) -> bool:
    return path.name.startswith("._") or "__MACOSX" in path.relative_to(root).parts


def _howto(data_dir: Path) -> str:
    return (
        f"Pass --data_dir pointing at the folder that holds RAVDESS's Actor_01 ... Actor_24 speech folders "
        f"(files like 03-01-05-02-01-02-12.wav), or let prepare_ravdess({str(data_dir)!r}, download=True) "
        f"download and extract {RAVDESS_ZIP_NAME} (~208 MB, CC BY-NC-SA 4.0) from {RAVDESS_URL}"
    )


def load_ravdess(data_dir: str | os.PathLike) -> list[dict]:
    """List RAVDESS audio-only speech clips below `data_dir` as metadata rows.

    Walks every folder below `data_dir` (any depth, sorted, so the row order is reproducible).
    Keeps `.wav` files whose name decodes to audio-only (03) speech (01); skips song files, the
    video modalities, macOS `._*` / `__MACOSX` metadata, hidden folders and names that are not
    RAVDESS names, and logs how many of each it skipped. The same clip found twice (e.g. extracted into two
    folders) is kept once. Audio is not opened.

    Args:
        data_dir: folder containing the corpus, in any layout.

    Returns:
        Rows `{"path", "speaker", "actor", "gender", "emotion", "intensity", "statement", "repetition"}`:
        absolute path, speaker "Actor_XX", actor int, gender "male" (odd actor) / "female" (even),
        emotion name, intensity "normal"/"strong", statement and repetition ints.

    Raises:
        FileNotFoundError: no RAVDESS speech clip under `data_dir` (or it does not exist).
        UsageError: a RAVDESS-form file name with an impossible code (the message names the file).
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"RAVDESS folder {root} does not exist. {_howto(root)}")
    skipped = SkippedFiles(root)
    rows = [_ravdess_row(path, meta) for path, meta in _speech_clips(root, skipped)]
    skipped.log(logger, "RAVDESS")
    if not rows:
        raise FileNotFoundError(
            f"No RAVDESS audio-only speech .wav files under {root} (found {skipped.describe()}). {_howto(root)}"
        )
    if len(rows) != RAVDESS_EXPECTED_FILES:
        logger.warning(
            "Found %d RAVDESS speech clips under %s, expected %d (the full %s release: 24 actors x 60). "
            "A partial corpus changes the splits and the metrics.",
            len(rows), root, RAVDESS_EXPECTED_FILES, RAVDESS_ZIP_NAME,
        )
    else:
        logger.info("Found %d RAVDESS speech clips under %s", len(rows), root)
    return rows


def _speech_clips(root: Path, skipped: SkippedFiles):
    """Yield `(path, parsed name)` of each audio-only speech .wav below `root`, once per clip; count the other
    files in `skipped`."""
    seen: set[str] = set()
    for path in walk_files(root):
        if _is_macos_metadata(path, root):
            skipped.add("macOS metadata (._* / __MACOSX)", path)
            continue
        if path.name.startswith("."):
            continue  # our own extraction marker and other hidden files are not corpus files
        try:
            meta = parse_ravdess_filename(path.name)
        except ValueError as err:
            raise UsageError(f"{err} (file {path})") from err
        reason = _skip_reason(path, meta, seen)
        if reason:
            skipped.add(reason, path)
        else:
            seen.add(path.stem)
            yield path, meta


def _skip_reason(path: Path, meta: dict | None, seen: set[str]) -> str | None:
    """Why a file is not an audio-only speech clip to load (a skip category), or None when it is one."""
    if meta is None:
        return "names not of the RAVDESS form"
    if meta["modality"] != "audio-only":
        return f"{meta['modality']} modality files"
    if meta["vocal_channel"] != "speech":
        return "song files"
    if path.suffix.lower() != ".wav":
        return "audio-only files that are not .wav"
    if path.stem in seen:
        return DUPLICATES
    return None


def _ravdess_row(path: Path, meta: dict) -> dict:
    actor = meta["actor"]
    return {
        "path": str(path),
        "speaker": f"Actor_{actor:02d}",
        "actor": actor,
        "gender": "male" if actor % 2 else "female",
        "emotion": meta["emotion"],
        "intensity": meta["intensity"],
        "statement": meta["statement"],
        "repetition": meta["repetition"],
    }


def _has_speech_files(root: Path) -> bool:
    """Cheap check: stop at the first audio-only speech .wav below `root`."""
    if not root.is_dir():
        return False
    for path in walk_files(root):
        if path.suffix.lower() != ".wav" or _is_macos_metadata(path, root):
            continue
        try:
            meta = parse_ravdess_filename(path.name)
        except ValueError:
            return True  # load_ravdess will raise with the full story
        if meta and meta["modality"] == "audio-only" and meta["vocal_channel"] == "speech":
            return True
    return False


def prepare_ravdess(
    data_dir: str | os.PathLike,
    download: bool = True,
    url: str = RAVDESS_URL,
    md5: str | None = RAVDESS_MD5,
) -> list[dict]:
    """Make sure RAVDESS speech is in `data_dir` (downloading it if allowed) and load it.

    Idempotent: a folder that already holds the corpus (extracted by hand or by an earlier call)
    is just loaded, without network access. An earlier call that was interrupted is finished:
    a partial download resumes, a partial extraction is redone.

    Args:
        data_dir: corpus folder; the zip is downloaded to `data_dir/Audio_Speech_Actors_01-24.zip`
            and extracted next to it (the zip can be deleted afterwards).
        download: allow downloading when the corpus is missing.
        url: where to download from (tests point this at a local server).
        md5: expected md5 of the zip; None skips the check.

    Returns:
        The rows of `load_ravdess(data_dir)`.

    Raises:
        FileNotFoundError: corpus missing and `download` is False.
        UsageError: the zip's md5 does not match, or an unsafe zip entry.
    """
    data_dir = Path(data_dir).expanduser()
    zip_path = data_dir / RAVDESS_ZIP_NAME
    part = zip_path.with_suffix(zip_path.suffix + ".part")
    # Our own zip (or .part) in data_dir means an earlier prepare ran here: finish its job even if
    # some speech files are already present, since a killed extraction may have left only a few.
    ours = zip_path.exists() or part.exists()
    if not ours and _has_speech_files(data_dir):
        return load_ravdess(data_dir)
    if not is_extracted(zip_path, data_dir):
        if download:
            download_file(url, zip_path, md5=md5)
        elif not zip_path.exists():
            raise FileNotFoundError(
                f"RAVDESS speech files not found under {data_dir} and download=False. {_howto(data_dir)}"
            )
        elif md5 and (actual := md5sum(zip_path)) != md5:
            raise UsageError(f"{zip_path} has md5 {actual}, expected {md5}; delete it and download again.")
        safe_extract_zip(zip_path, data_dir)
    return load_ravdess(data_dir)

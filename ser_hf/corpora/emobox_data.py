"""Every EmoBox corpus through EmoBox's own files (`--corpus emobox --emobox_dir EmoBox/data/<dataset>`).

EmoBox (Ma et al., Interspeech 2024, https://github.com/emo-box/EmoBox) publishes for each of its 32 corpora:

    data/<dataset>/fold_<n>/<dataset>_train_fold_<n>.jsonl   (and _test_, and _valid_ for MELD, MSP-Podcast, M3ED)
    data/<dataset>/label_map.json                            the corpus's raw emotion codes -> EmoBox's labels
    data/<dataset>/data.seg.wrd.stm                          one line per utterance: key, channel, speaker, ...

Each jsonl line is one utterance: key, wav (relative to the EmoBox root: the folder holding `downloads/`, our
`--data_dir`), emo (the raw code), length, sample_rate, channel; PAVOQUE's lines cut a segment of a long recording
(start_time, end_time), which is written once as its own wav under DATA_DIR/.ser_hf_segments/. The older files
`emodb_train_fold1.jsonl` (no underscore before the number; fields audio / label) are not read.

The jsonl files carry no speaker: it comes from the stm file's third column when the corpus has one. The folds are
EmoBox's, whatever they are: several corpora's folds put a speaker on both sides (EmoDB, TESS, CREMA-D and other single
random folds), and such a run is said to be NOT speaker-independent, as a stratified split is, but not refused.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ser_hf.corpora.files import Rows
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

SEGMENT_DIRNAME = ".ser_hf_segments"
_FOLD_DIR = re.compile(r"^fold_(\d+)$")
# EmoBox's file names for each of our splits (valid only where the corpus has one).
_SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}


def _dataset(emobox_dir: Path) -> str:
    return emobox_dir.name


def fold_numbers(emobox_dir) -> list[int]:
    """EmoBox's fold numbers of a corpus (1, 2, ...), in order.

    Raises:
        FileNotFoundError: no fold_<n> folders (not an EmoBox data/<dataset> folder).
    """
    emobox_dir = Path(emobox_dir)
    numbers = sorted(int(m.group(1)) for p in emobox_dir.iterdir() if p.is_dir() and (m := _FOLD_DIR.match(p.name))) \
        if emobox_dir.is_dir() else []
    if not numbers:
        raise FileNotFoundError(f"--emobox_dir {emobox_dir}: no fold_<n> folders; give EmoBox's data/<dataset> folder "
                                "(e.g. EmoBox/data/iemocap)")
    return numbers


def label_map(emobox_dir) -> dict:
    """{raw code (lower case): our label (EmoBox's label, lower case)} from label_map.json."""
    path = Path(emobox_dir) / "label_map.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: EmoBox's data/<dataset> folder holds one")
    return {str(code).lower(): str(label).lower() for code, label in json.loads(path.read_text()).items()}


def label_names(emobox_dir) -> list[str]:
    """The corpus's labels in label_map.json's order (a label two codes map to, as IEMOCAP's exc and hap, once)."""
    return list(dict.fromkeys(label_map(emobox_dir).values()))


def speakers(emobox_dir) -> dict:
    """{utterance key: speaker} from data.seg.wrd.stm's third column; {} without the file."""
    path = Path(emobox_dir) / "data.seg.wrd.stm"
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            found[parts[0]] = parts[2]
    return found


def _segment(root: Path, record: dict) -> Path:
    """A start_time / end_time segment of a long recording as its own wav, written once."""
    import soundfile as sf

    source = root / record["wav"]
    target = root / SEGMENT_DIRNAME / f"{record['key']}.wav"
    if not target.is_file():
        info = sf.info(source)
        start, stop = round(float(record["start_time"]) * info.samplerate), round(float(record["end_time"]) * info.samplerate)
        samples, rate = sf.read(source, start=start, stop=stop, dtype="float32")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.wav")
        sf.write(partial, samples, rate, subtype="PCM_16")
        partial.replace(target)  # never a half-written segment under the final name
    return target


def _read_split(path: Path, root: Path, codes: dict, speaker_of: dict) -> list[dict]:
    rows, unknown, missing = [], set(), []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key, wav, emo = record["key"], record["wav"], str(record["emo"])
        except (ValueError, KeyError) as err:
            raise UsageError(f"{path} line {number}: not an EmoBox line (key, wav, emo): {err}") from None
        label = codes.get(emo.lower())
        if label is None:
            unknown.add(emo)
            continue
        if not (root / wav).is_file():
            missing.append(wav)
            continue
        audio = _segment(root, record) if "start_time" in record else (root / wav)
        rows.append({"path": str(audio.resolve()), "label": label, "speaker": speaker_of.get(key), "key": key})
    if unknown:
        raise UsageError(f"{path}: emotion codes {sorted(unknown)} are not in label_map.json")
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} wav files are not under --data_dir {root} (e.g. "
                                f"{missing[0]}): --data_dir is the folder that holds EmoBox's downloads/")
    return rows


def load_emobox_fold(emobox_dir, root, fold: int) -> dict:
    """The splits EmoBox's fold_<fold + 1> files give: {"train", "test"[, "validation"]} -> rows.

    Args:
        emobox_dir: EmoBox's data/<dataset> folder.
        root: the folder EmoBox's wav paths are relative to (`--data_dir`).
        fold: ser_hf's fold index (0 is EmoBox's fold_1).

    Raises:
        FileNotFoundError: the fold's train or test file, or audio, is missing.
        UsageError: a line that is not EmoBox's, or a code label_map.json does not know.
    """
    emobox_dir, root = Path(emobox_dir), Path(root)
    numbers = fold_numbers(emobox_dir)
    if not 0 <= fold < len(numbers):
        raise UsageError(f"--fold {fold}: EmoBox has {len(numbers)} folds for {_dataset(emobox_dir)} (0..{len(numbers) - 1})")
    number = numbers[fold]
    codes, speaker_of = label_map(emobox_dir), speakers(emobox_dir)
    splits = {}
    for split, name in _SPLIT_FILES.items():
        path = emobox_dir / f"fold_{number}" / f"{_dataset(emobox_dir)}_{name}_fold_{number}.jsonl"
        if path.is_file():
            splits[split] = _read_split(path, root, codes, speaker_of)
        elif split != "validation":
            raise FileNotFoundError(f"{path} not found: an EmoBox fold has {_dataset(emobox_dir)}_{name}_fold_{number}.jsonl")
    return splits


def load_emobox(emobox_dir, root) -> Rows:
    """Every utterance of every fold, once (for the scan and the caches, done once for all folds)."""
    seen, rows = set(), Rows()
    for fold in range(len(fold_numbers(emobox_dir))):
        for split_rows in load_emobox_fold(emobox_dir, root, fold).values():
            for row in split_rows:
                if row["path"] not in seen:
                    seen.add(row["path"])
                    rows.append(row)
    return rows

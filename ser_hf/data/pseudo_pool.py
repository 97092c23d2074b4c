"""The unlabeled pool of pseudo-labelling: which files, the checks that none of them leaks labeled audio, the scan.

Two sources of unlabeled audio:

- `--unlabeled_dir DIR`: every audio file below DIR. A file that is a corpus file (same resolved path, or the
  same bytes under another name), or whose corpus-style name (RAVDESS, the demo, CREMA-D) says it is an evaluation
  speaker's, is refused: pseudo-labelling it would train on the very voices the scores are measured on.
- `--pseudo_pool_fold F`: fold F's speakers of a labeled corpus, which `prepare_splits` leaves out of labeled
  training. Their labels are held back in `held_back_label`, read only to score the pseudo-labels in the report.

    pool = pool_rows(data_args, corpus)
    check_pool_isolation(pool, prepared.splits, data_args)
    pool, scan_report = scan_pool(pool, data_args, output_dir)
"""

import dataclasses
import hashlib
import os
from pathlib import Path

from ser_hf.corpora.cremad import parse_cremad_filename
from ser_hf.corpora.files import AUDIO_EXTENSIONS, walk_files
from ser_hf.corpora.ravdess import parse_ravdess_filename
from ser_hf.data.prepare import cache_dir_for, prepare_splits
from ser_hf.data.scan import data_report, partition_rows, scan_files
from ser_hf.errors import UsageError

POOL_SPLIT = "unlabeled"  # the pool's name in scan reports
# Corpora whose loader takes every matching file below data_dir: unlabeled audio there would be read as labeled.
_WALKED_CORPORA = ("ravdess", "demo", "cremad", "audiofolder")


def pseudo_labelling(data_args):
    """Whether the run pseudo-labels a pool (`--unlabeled_dir` or `--pseudo_pool_fold`)."""
    return bool(data_args.unlabeled_dir) or data_args.pseudo_pool_fold is not None


def speaker_from_name(path, corpus):
    """The speaker a corpus-style file name names ("Actor_05" for RAVDESS and the demo, "1001" for CREMA-D).

    Args:
        path: an audio file.
        corpus: the run's `--corpus`; other corpora have no naming scheme.

    Returns:
        The speaker as the corpus loader writes it, or None when the name does not follow the corpus's scheme.
    """
    try:
        if corpus in ("ravdess", "demo"):
            meta = parse_ravdess_filename(Path(path).name)
            return None if meta is None else f"Actor_{meta['actor']:02d}"
        if corpus == "cremad":
            meta = parse_cremad_filename(Path(path).name)
            return None if meta is None else str(meta["actor"])
    except ValueError:  # the scheme's form with an impossible code: not a corpus name
        return None
    return None


def pool_rows(data_args, corpus=None):
    """The unlabeled pool as rows {"path", "speaker"} (+ "held_back_label" for `--pseudo_pool_fold`).

    Args:
        data_args: resolved `DataArguments` with `unlabeled_dir` or `pseudo_pool_fold`.
        corpus: `load_corpus(data_args)` when the caller has it (fold pools only).

    Raises:
        UsageError: the folder is missing or holds no audio; a fold pool on a corpus without speakers.
    """
    if data_args.pseudo_pool_fold is not None:
        fold = data_args.pseudo_pool_fold
        # The pool fold as a validation fold: exactly the speakers that prepare_splits leaves out of training.
        prepared = prepare_splits(dataclasses.replace(data_args, fold=fold, test_fold=None, pseudo_pool_fold=None),
                                  corpus)
        if not prepared.speaker_independent:
            raise UsageError("--pseudo_pool_fold needs speaker folds, and the corpus has no speaker column "
                             "(use --unlabeled_dir instead)")
        return [{"path": row["path"], "speaker": row["speaker"], "held_back_label": row["label"]}
                for row in prepared.splits["validation"]]
    root = Path(data_args.unlabeled_dir)
    if not root.is_dir():
        raise UsageError(f"--unlabeled_dir {root}: no such folder")
    files = [p for p in walk_files(root) if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")]
    if not files:
        raise UsageError(f"--unlabeled_dir {root}: no audio files ({' '.join(AUDIO_EXTENSIONS)}) below it")
    return [{"path": str(p), "speaker": speaker_from_name(p, data_args.corpus)} for p in files]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _same_bytes(pool, labeled):
    """(pool path, labeled path) of the first pool file whose bytes equal a labeled file's, else None."""
    by_size = {}
    for path in labeled:
        by_size.setdefault(os.path.getsize(path), []).append(path)
    hashes = {}  # only files of equal size are read and hashed
    for path in pool:
        for other in by_size.get(os.path.getsize(path), []):
            if other not in hashes:
                hashes[other] = _sha256(other)
            if path not in hashes:
                hashes[path] = _sha256(path)
            if hashes[path] == hashes[other]:
                return path, other
    return None


def check_pool_isolation(pool, splits, data_args):
    """Refuse a pool that would put labeled or evaluation audio into pseudo-labelled training.

    Refused: an `--unlabeled_dir` inside data_dir (or holding it) for corpora whose loader reads the whole folder;
    a pool file that is a labeled clip of any split (same resolved path, or the same bytes under another name:
    in cross-validation every training clip is some fold's evaluation clip, so every fold refuses alike); a pool
    file whose corpus-style name says it is a validation or test speaker's. Files of training speakers that are
    not corpus clips are allowed: they are genuinely unlabeled. A re-encoded copy (other format or rate) under
    a name without the corpus's scheme is not detected.

    Args:
        pool: `pool_rows` output.
        splits: the run's labeled splits, split name -> rows with "path" (and "speaker").
        data_args: resolved `DataArguments`.

    Raises:
        UsageError: naming the offending file and the fix.
    """
    fix = f"remove it from --unlabeled_dir {data_args.unlabeled_dir}" if data_args.unlabeled_dir else \
        "choose another --pseudo_pool_fold"
    if data_args.unlabeled_dir and data_args.corpus in _WALKED_CORPORA:
        pool_dir, data_dir = Path(data_args.unlabeled_dir).resolve(), Path(data_args.data_dir).resolve()
        if pool_dir == data_dir or data_dir in pool_dir.parents or pool_dir in data_dir.parents:
            raise UsageError(f"--unlabeled_dir {data_args.unlabeled_dir} and --data_dir {data_args.data_dir} overlap: "
                             "the corpus loader reads labeled clips from the whole data_dir; put the unlabeled audio "
                             "in a folder of its own outside it")
    labeled = {os.path.realpath(row["path"]): split for split, rows in splits.items() for row in rows}
    for row in pool:
        split = labeled.get(os.path.realpath(row["path"]))
        if split is not None:
            raise UsageError(f"{row['path']} is a labeled {split} clip of the corpus, not unlabeled audio: {fix}")
    copy = _same_bytes([row["path"] for row in pool], list(labeled))
    if copy is not None:
        raise UsageError(f"{copy[0]} has the same bytes as the labeled {labeled[copy[1]]} clip {copy[1]}: a corpus "
                         f"clip under another name is not unlabeled audio; {fix}")
    evaluated = {row.get("speaker"): split for split, rows in splits.items() if split != "train" for row in rows}
    evaluated.pop(None, None), evaluated.pop("", None)
    for row in pool:
        if row.get("speaker") in evaluated:
            raise UsageError(f"{row['path']}: its name says speaker {row['speaker']}, a {evaluated[row['speaker']]} "
                             f"speaker of this run, whose audio must not be trained on: {fix}")


def scan_pool(pool, data_args, report_dir):
    """The same audio scan as the corpus's: bad files are reported and left out, never fatal.

    Args:
        pool: `pool_rows` output.
        data_args: `DataArguments` (max_audio_seconds, scan_workers, data_dir for the scan cache).
        report_dir: the run's output dir (home of the scan cache when the corpus folder is read-only).

    Returns:
        (kept rows with "duration" added, `data_report` of the excluded ones under the split name "unlabeled")
    """
    # The corpus scan's cache file and parameters: a file scanned for either is not decoded again.
    results = scan_files([row["path"] for row in pool], max_seconds=data_args.max_audio_seconds,
                         workers=data_args.scan_workers,
                         cache_path=cache_dir_for(data_args, report_dir) / ".ser_hf_scan_cache.json")
    kept, excluded = partition_rows(pool, results)
    return kept, data_report({POOL_SPLIT: excluded})

"""Bring-your-own corpus: manifests, audiofolder trees, Hub datasets and the user's own splits.

Every loader here reaches the row format of the corpus loaders: `{"path": absolute str,
"label": str, "speaker": str | None (only when the source has a speaker column), ...extra columns}`,
so the rest of the pipeline (validation scan, splits, Dataset) does not care where rows came from.

Speaker independence cannot be checked without speakers: loaders that lack a speaker column say
loudly that results may measure speaker recognition rather than emotion.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

from ser_hf.corpora.files import AUDIO_EXTENSIONS
from ser_hf.errors import SPEAKER_LEAK_WARNING, UsageError, count, sample_text

logger = logging.getLogger(__name__)

_MANIFEST_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_RAVDESS_ACTOR_DIR = re.compile(r"^Actor_\d\d$")
def _read_records(path: Path) -> tuple[list[dict], list[str]]:
    """Read a CSV / TSV / JSON-lines file into (records, columns), each record with its line number."""
    fmt = _MANIFEST_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"Unsupported manifest {path}: expected .csv, .tsv, .jsonl or .json (one object per line)")
    records: list[dict] = []
    if fmt in ("csv", "tsv"):
        # utf-8-sig: spreadsheets often save a BOM that would otherwise glue onto the first column name.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter="," if fmt == "csv" else "\t")
            columns = [c for c in reader.fieldnames or []]
            for line, record in enumerate(reader, start=2):
                if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
                    continue  # blank line
                records.append({"__line__": line, **{k: v for k, v in record.items() if k is not None}})
        return records, columns
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        # A JSON array is unambiguous and common enough to accept alongside JSON lines.
        data = json.loads(text)
        items = list(enumerate(data, start=1))
    else:
        items = []
        for line, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    items.append((line, json.loads(raw)))
                except json.JSONDecodeError as err:
                    raise UsageError(f"{path} line {line} is not a JSON object ({err.msg})") from None
    columns: list[str] = []
    for line, item in items:
        if not isinstance(item, dict):
            raise UsageError(f"{path} line {line}: expected a JSON object, got {type(item).__name__}")
        for key in item:
            if key not in columns:
                columns.append(key)
        records.append({"__line__": line, **item})
    return records, columns


def load_manifest(
    path: str | os.PathLike,
    path_column: str = "path",
    label_column: str = "label",
    speaker_column: str | None = "speaker",
    column_flags: bool = True,
) -> list[dict]:
    """Load a manifest listing audio files with their labels (and optionally speakers).

    Args:
        path: a .csv, .tsv, or .jsonl / .json file (one JSON object per line; a JSON array also works).
        path_column: column with the audio path; relative paths resolve against the manifest's folder.
        label_column: column with the emotion label (stored as a string).
        speaker_column: column with the speaker id; optional in the file. None ignores speakers.
        column_flags: a missing column's message offers --path_column / --label_column; False where the column
            names are a convention the command line does not change (audiofolder's metadata.csv).

    Returns:
        One row per record, in file order: `"path"` (absolute str), `"label"` (str), `"speaker"`
        (str, or None where a record leaves it empty) only when the file has the speaker column,
        plus every other column unchanged. The source path/label/speaker columns are renamed, not
        duplicated.

    Raises:
        UsageError: unsupported format, empty manifest, a required column missing (the message names
            the file, the column and the columns present), or empty path/label values.
        FileNotFoundError: the manifest, or any audio file it lists (all missing files are
            reported together: the first 10 and the count).
    """
    manifest = Path(path).expanduser().resolve()
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest {manifest} does not exist")
    records, columns = _read_records(manifest)
    _check_columns(manifest, columns, path_column, label_column, speaker_column, column_flags)
    if not records:
        raise UsageError(f"Manifest {manifest} lists no audio files")
    if speaker_column is not None and speaker_column not in columns:
        speaker_column = None  # optional: without it rows get no "speaker" key at all
    rows, empty, missing_files = _manifest_rows(records, manifest.parent, path_column, label_column, speaker_column)
    if empty:
        raise UsageError(
            f"Manifest {manifest}: empty {path_column!r} or {label_column!r} on line(s) {sample_text(empty)}"
        )
    if missing_files:
        # All at once: fixing a manifest one error per run is slow.
        raise FileNotFoundError(
            f"{len(missing_files)} of the {len(rows)} audio files listed in {manifest} do not exist "
            f"(relative paths resolve against {manifest.parent}): {sample_text(missing_files)}"
        )
    n_labels = len({row["label"] for row in rows})
    if speaker_column is not None:
        n_speakers = len({row["speaker"] for row in rows if row["speaker"] is not None})
        logger.info("Loaded %s, %s, %s from %s", count(len(rows), "clip"), count(n_labels, "label"),
                    count(n_speakers, "speaker"), manifest)
    else:
        logger.info("Loaded %s, %s, no speaker column from %s", count(len(rows), "clip"), count(n_labels, "label"),
                    manifest)
    return rows


def _check_columns(manifest: Path, columns: list[str], path_column: str, label_column: str,
                   speaker_column: str | None, column_flags: bool = True) -> None:
    missing = [c for c in (path_column, label_column) if c not in columns]
    if not missing:
        return
    found = (f"Manifest {manifest} has no column {' or '.join(repr(c) for c in missing)}; "
             f"columns present: {', '.join(map(repr, columns)) or 'none'}. ")
    if column_flags:
        flags = {path_column: "--path_column", label_column: "--label_column"}
        raise UsageError(found + "Name yours: " + " ".join(f"{flags[c]} COLUMN" for c in missing)
                         + (" (and --speaker_column COLUMN for the speaker)" if speaker_column not in columns else ""))
    speaker = f", and the speaker column (if any) to {speaker_column!r}" if speaker_column else ""
    raise UsageError(found + f"Rename the columns in the file: the audio path column to {path_column!r}, the label "
                     f"column to {label_column!r}{speaker}.")


def _manifest_rows(records: list[dict], base: Path, path_column: str, label_column: str,
                   speaker_column: str | None) -> tuple[list[dict], list[int], list[str]]:
    """Rows from manifest records, the line numbers with an empty path or label, and the listed files that do not
    exist (checked for every record, so that one error lists them all)."""
    rows, empty, missing_files = [], [], []
    for record in records:
        line = record.pop("__line__")
        audio, label = record.get(path_column), record.get(label_column)
        if audio is None or str(audio).strip() == "" or label is None or str(label).strip() == "":
            empty.append(line)
            continue
        resolved = (base / Path(str(audio).strip()).expanduser()).resolve()
        if not resolved.is_file():
            missing_files.append(str(resolved))
        row = {k: v for k, v in record.items() if k not in (path_column, label_column, speaker_column)}
        row["path"] = str(resolved)
        row["label"] = str(label).strip()
        if speaker_column is not None:
            speaker = record.get(speaker_column)
            row["speaker"] = None if speaker is None or str(speaker).strip() == "" else str(speaker).strip()
        rows.append(row)
    return rows, empty, missing_files


def labels_from_rows(rows: list[dict], label_key: str = "label") -> list[str]:
    """The label set of rows: sorted unique names (so ids do not depend on row order).

    Args:
        rows: metadata rows.
        label_key: the row key holding the label.

    Returns:
        Sorted unique labels.
    """
    return sorted({row[label_key] for row in rows}, key=str)


def _looks_like_ravdess(root: Path) -> bool:
    return any(p.is_dir() and _RAVDESS_ACTOR_DIR.match(p.name) for p in root.iterdir())


def load_audiofolder(data_dir: str | os.PathLike) -> list[dict]:
    """Load a tree in the `datasets` audiofolder convention.

    With `metadata.csv` (or `metadata.jsonl`) at the top: columns `file_name` (relative to that
    folder), `label`, optional `speaker`, any others kept. Without it, the label is the name of each
    file's parent folder (`data_dir/angry/x.wav` -> "angry"), as `load_dataset("audiofolder")` does.

    Args:
        data_dir: the audiofolder root.

    Returns:
        Rows as from `load_manifest` (no "speaker" key when labels come from folder names).

    Raises:
        FileNotFoundError: `data_dir` missing, no audio files, or listed files missing.
        UsageError: no metadata file and the tree looks like RAVDESS (Actor_XX folders would become
            the labels), or audio files sit directly in `data_dir` with no folder to name them.
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"Audio folder {root} does not exist")
    for name in ("metadata.csv", "metadata.jsonl"):
        if (root / name).is_file():
            return load_manifest(root / name, path_column="file_name", label_column="label", speaker_column="speaker",
                                 column_flags=False)
    if _looks_like_ravdess(root):
        raise UsageError(
            f"{root} has Actor_XX folders and no metadata.csv: as an audiofolder it would be labelled by actor, "
            "not by emotion. It looks like RAVDESS: use `--corpus ravdess`, which reads the emotion from the file "
            "names. (Or add a metadata.csv with file_name,label columns.)"
        )
    rows, loose = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if filename.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if path.parent == root:
                loose.append(filename)
            else:
                rows.append({"path": str(path), "label": path.parent.name})
    if loose:
        raise UsageError(
            f"{root} has audio files directly inside it ({sample_text(loose, 3)}) and no metadata.csv, so they have no "
            "label. Put each class in its own folder (data_dir/<label>/*.wav) or add a metadata.csv "
            "(columns file_name,label[,speaker])."
        )
    if not rows:
        raise FileNotFoundError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    counts = Counter(row["label"] for row in rows)
    logger.info(
        "No metadata.csv in %s: labels are the parent folder names (%s); no speaker information.",
        root, ", ".join(f"{label}: {n}" for label, n in sorted(counts.items())),
    )
    return rows


def load_hub_dataset(
    name: str,
    split: str | None = None,
    audio_column: str = "audio",
    label_column: str = "label",
    speaker_column: str | None = None,
    **kwargs,
):
    """Load a dataset from the Hub (or a local folder) and find its label names.

    `name` is passed to `datasets.load_dataset` (a Hub id, or a builder such as "audiofolder" with
    `data_dir=`), except that a folder written by `Dataset.save_to_disk` is read with
    `datasets.load_from_disk`. Audio is not decoded here.

    Args:
        name: Hub dataset id, builder name, or `save_to_disk` folder.
        split: split to load; None loads all splits (a `DatasetDict`).
        audio_column: column holding the audio.
        label_column: column holding the label.
        speaker_column: column holding the speaker id, or None (a warning says speakers may leak).
        **kwargs: passed to `load_dataset` (e.g. `data_dir`, `revision`, `name` of a config as `config_name`).

    Returns:
        `(dataset, label_names)`: the `Dataset` / `DatasetDict`, and the label names in id order:
        from the `ClassLabel` feature when the label column has one, otherwise sorted unique values.

    Raises:
        UsageError: a named column is missing (the message lists the columns present), or `split`
            is not in a `save_to_disk` DatasetDict.
    """
    import datasets  # imported here so that manifest loading works without the datasets stack

    local = Path(name).expanduser()
    if local.is_dir() and ((local / "state.json").is_file() or (local / "dataset_dict.json").is_file()):
        dataset = datasets.load_from_disk(str(local))
        if split is not None and isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise UsageError(f"{local} has splits {list(dataset)}, not {split!r}")
            dataset = dataset[split]
    else:
        if "config_name" in kwargs:
            kwargs["name"] = kwargs.pop("config_name")
        dataset = datasets.load_dataset(name, split=split, **kwargs)
    parts = list(dataset.values()) if isinstance(dataset, datasets.DatasetDict) else [dataset]
    for part in parts:
        for column in (audio_column, label_column, speaker_column):
            if column is not None and column not in part.column_names:
                raise UsageError(
                    f"Dataset {name!r} has no column {column!r}; columns present: {', '.join(part.column_names)}"
                )
    label_names = _hub_label_names(parts, label_column)
    if speaker_column is None:
        logger.warning("No speaker column given for %s. %s", name, SPEAKER_LEAK_WARNING)
    logger.info("Loaded %s: %s; labels %s", name, dataset, label_names)
    return dataset, label_names


def _hub_label_names(parts, label_column: str) -> list[str]:
    """The `ClassLabel` names in id order when the column has them, else the sorted values of every part."""
    import datasets

    feature = parts[0].features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    values = set()
    for part in parts:
        values.update(str(v) for v in part[label_column])
    return sorted(values)


def hub_dataset_rows(name, cache_dir, split="train", audio_column="audio", label_column="label",
                     speaker_column=None, **kwargs):
    """Rows (path, label[, speaker]) from a Hub dataset, so it reaches the same pipeline as files on disk.

    Audio stored inside the dataset (parquet bytes) is written once to `cache_dir` as files: the audio scan,
    the per-clip predictions and the pipeline all work on paths.

    Args:
        name: Hub dataset id (or a local folder, see `load_hub_dataset`).
        cache_dir: where embedded audio is written.
        split: the split that holds the whole corpus (folds are made from it).
        audio_column, label_column, speaker_column: column names.
        **kwargs: passed to `load_hub_dataset`.

    Returns:
        (rows, label_names)
    """
    import datasets

    dataset, label_names = load_hub_dataset(name, split=split, audio_column=audio_column, label_column=label_column,
                                            speaker_column=speaker_column, **kwargs)
    dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    is_class_label = isinstance(dataset.features[label_column], datasets.ClassLabel)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, example in enumerate(dataset):
        audio = example[audio_column]
        if audio.get("bytes"):
            suffix = Path(audio.get("path") or "").suffix or ".wav"
            path = cache_dir / f"{index:07d}{suffix}"
            if not path.exists() or path.stat().st_size != len(audio["bytes"]):
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(audio["bytes"])
                os.replace(tmp, path)
        else:
            path = Path(audio["path"])
        label = example[label_column]
        row = {"path": str(path), "label": label_names[label] if is_class_label else str(label)}
        if speaker_column:
            row["speaker"] = str(example[speaker_column])
        rows.append(row)
    return rows, label_names


def load_user_splits(
    train: str | os.PathLike,
    validation: str | os.PathLike,
    test: str | os.PathLike | None = None,
    path_column: str = "path",
    label_column: str = "label",
    speaker_column: str | None = "speaker",
) -> dict[str, list[dict]]:
    """Load the user's own train / validation (/ test) manifests, e.g. train.csv, valid.csv, test.csv.

    The label set is the TRAIN split's (sorted unique, `labels_from_rows(splits["train"])`): a model
    cannot learn a class it never sees, so evaluation labels outside it are an error. The split is the
    user's: a speaker in several splits is reported (it leaks), not fixed.

    Args:
        train: training manifest (see `load_manifest` for formats).
        validation: validation manifest.
        test: optional test manifest.
        path_column: audio path column in every manifest.
        label_column: label column in every manifest.
        speaker_column: speaker column (optional in the files; None ignores it).

    Returns:
        `{"train": rows, "validation": rows}` plus `"test"` when given.

    Raises:
        UsageError: labels in validation/test that train lacks (named, with the split), or the
            errors of `load_manifest`.
        FileNotFoundError: see `load_manifest`.
    """
    sources = {"train": train, "validation": validation}
    if test is not None:
        sources["test"] = test
    splits = {
        split: load_manifest(path, path_column=path_column, label_column=label_column, speaker_column=speaker_column)
        for split, path in sources.items()
    }
    labels = set(labels_from_rows(splits["train"]))
    for split, rows in splits.items():
        unknown = sorted({row["label"] for row in rows} - labels)
        if unknown:
            raise UsageError(
                f"The {split} split ({sources[split]}) has label(s) {', '.join(map(repr, unknown))} that the train "
                f"split ({train}) does not have; train labels: {', '.join(sorted(labels))}. "
                "The label set comes from the train split."
            )
    _warn_about_speakers(splits, speaker_column)
    logger.info(
        "User splits: %s; %d labels from train",
        ", ".join(f"{split} {len(rows)} clips" for split, rows in splits.items()), len(labels),
    )
    return splits


def _warn_about_speakers(splits: dict[str, list[dict]], speaker_column: str | None) -> None:
    """Warn about splits without speakers and about speakers in two splits: both leak; the user's split stands."""
    without = [split for split, rows in splits.items() if not rows or "speaker" not in rows[0]]
    if without:
        logger.warning(
            "No speaker column %r in the %s split(s): speaker independence cannot be checked. %s",
            speaker_column, ", ".join(without), SPEAKER_LEAK_WARNING,
        )
    names = list(splits)
    speakers = {
        split: {row["speaker"] for row in rows if row.get("speaker") is not None} for split, rows in splits.items()
    }
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = sorted(speakers[first] & speakers[second])
            if shared:
                logger.warning(
                    "%d speaker(s) appear in both the %s and %s splits: %s. %s This is your split; it is used as given.",
                    len(shared), first, second, sample_text(shared), SPEAKER_LEAK_WARNING,
                )

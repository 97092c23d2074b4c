"""From a corpus folder to speaker-independent `datasets` splits ready for the Trainer."""

import logging
import os
from collections import Counter
from pathlib import Path

from datasets import Audio, Dataset, DatasetDict

from ser_hf.audio import SAMPLE_RATE, AudioTransform, audio_duration_seconds
from ser_hf.augment import build_augmentation
from ser_hf.labels import RAVDESS_EMOTIONS

logger = logging.getLogger(__name__)

# The run's DataArguments, saved in its output dir so that recipes/evaluate.py can rebuild the same splits.
DATA_ARGS_FILE = "data_args.json"

# What the model card says about each corpus ("other": a user's corpus, whose licence we cannot know).
CORPUS_INFO = {
    "ravdess": {"name": "RAVDESS", "dataset_id": None, "license": "cc-by-nc-sa-4.0"},
    "demo": {"name": "ser_hf synthetic demo corpus (espeak-ng, RAVDESS layout)", "dataset_id": None,
             "license": "apache-2.0"},
    "cremad": {"name": "CREMA-D", "dataset_id": None, "license": "odbl"},
    "manifest": {"name": "user corpus (manifest)", "dataset_id": None, "license": "other"},
    "audiofolder": {"name": "user corpus (audiofolder)", "dataset_id": None, "license": "other"},
    "hub": {"name": "Hub dataset", "dataset_id": None, "license": "other"},
}


def load_corpus(data_args):
    """Find, download or generate a whole corpus and return its metadata rows and label set.

    Args:
        data_args: `DataArguments`.

    Returns:
        (rows: dicts with at least path and label, and speaker/gender where the corpus has them;
         label_names in id order, fixed by code for the known corpora)
    """
    from ser_hf.corpora.ravdess import load_ravdess, prepare_ravdess

    if data_args.corpus in ("demo", "ravdess"):
        if data_args.corpus == "demo":
            from ser_hf.demo_corpus import synthesize_demo_corpus

            synthesize_demo_corpus(data_args.data_dir, seed=data_args.demo_seed)
            rows = load_ravdess(data_args.data_dir)
        else:
            rows = prepare_ravdess(data_args.data_dir, download=data_args.download)
        return [{**row, "label": row["emotion"]} for row in rows], list(RAVDESS_EMOTIONS)
    if data_args.corpus == "cremad":
        from ser_hf.corpora.cremad import cremad_labels, load_cremad

        return load_cremad(data_args.data_dir, labels=data_args.labels), list(cremad_labels(data_args.labels))
    from ser_hf.corpora.manifest import hub_dataset_rows, labels_from_rows, load_audiofolder, load_manifest

    if data_args.corpus == "hub":
        extra = {"config_name": data_args.dataset_config_name} if data_args.dataset_config_name else {}
        return hub_dataset_rows(data_args.dataset_name, Path(data_args.data_dir) / "hub_audio",
                                split=data_args.dataset_split, audio_column=data_args.audio_column,
                                label_column=data_args.label_column, speaker_column=data_args.speaker_column, **extra)
    rows = load_manifest(data_args.manifest) if data_args.corpus == "manifest" else load_audiofolder(data_args.data_dir)
    return rows, labels_from_rows(rows)


def prepare_splits(data_args):
    """Load the corpus and split it, speaker-independently whenever speakers are known.

    - Known corpora and manifests with a speaker column: `n_folds` folds of speakers (gender-balanced where
      gender is known), fold `fold` for validation, `test_fold` for test.
    - `train_manifest`/`validation_manifest`(/`test_manifest`): the user's own split, labels from train.
    - No speaker column: a stratified split, with a loud warning that speakers may leak.

    Returns:
        (splits: {"train", "validation"[, "test"]} -> rows, label_names,
         (split name, protocol description) for the model card)
    """
    from ser_hf.corpora.manifest import labels_from_rows, load_user_splits, stratified_split
    from ser_hf.splits import describe_split, speaker_folds, split_by_fold

    if data_args.train_manifest:
        splits = load_user_splits(train=data_args.train_manifest, validation=data_args.validation_manifest,
                                  test=data_args.test_manifest)
        protocol = ("The user's own train/validation" + ("/test" if data_args.test_manifest else "")
                    + " files; speaker independence is what those files make it (overlaps are warned about).")
        return splits, labels_from_rows(splits["train"]), (f"validation ({data_args.validation_manifest})", protocol)
    rows, label_names = load_corpus(data_args)
    if all(row.get("speaker") for row in rows):
        speaker_to_gender = {row["speaker"]: row.get("gender") or "unknown" for row in rows}
        folds = speaker_folds(speaker_to_gender, n_folds=data_args.n_folds, seed=data_args.fold_seed)
        # split_by_fold refuses any speaker in two splits.
        splits = split_by_fold(rows, folds, eval_fold=data_args.fold, test_fold=data_args.test_fold)
        split_name = f"validation (fold {data_args.fold}: {', '.join(folds[data_args.fold])})"
        protocol = (f"Speaker-independent: {data_args.n_folds} folds of speakers, fold {data_args.fold} held out "
                    f"for validation" + (f", fold {data_args.test_fold} for test" if data_args.test_fold is not None
                                         else "") + "; no speaker appears in two splits.")
    else:
        splits = stratified_split(rows, eval_fraction=1 / data_args.n_folds, seed=data_args.fold_seed or 0)
        split_name = "validation (stratified, speakers unknown: may leak)"
        protocol = ("Stratified by class, NOT speaker-independent: the corpus has no speaker column, so the same "
                    "voices may be in training and evaluation and the scores may be optimistic.")
    logger.info("Split:\n%s", describe_split(splits) if "speaker" in rows[0] else {k: len(v) for k, v in splits.items()})
    return splits, label_names, (split_name, protocol)


def class_counts(splits, label_names):
    """{split: {class: clips}} in label order, zeros included, so a missing class is visible."""
    counts = {name: Counter(row["label"] for row in rows) for name, rows in splits.items()}
    return {name: {label: counts[name][label] for label in label_names} for name in splits}


def class_counts_markdown(splits, label_names):
    """Per-class clip counts per split, as a markdown table for the log and the model card."""
    counts = class_counts(splits, label_names)
    names = list(splits)
    lines = ["| class | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label in label_names:
        lines.append(f"| {label} | " + " | ".join(str(counts[name][label]) for name in names) + " |")
    lines.append("| **total** | " + " | ".join(str(len(splits[name])) for name in names) + " |")
    return "\n".join(lines)


def exclude_bad_audio(splits, data_args, report_dir, is_main=True):
    """Decode every file once and drop the ones training would choke on, with a report.

    Unreadable, empty, truncated, too short, non-finite, silent and suspiciously long files are excluded
    (and listed in `report_dir/data_report.json`); with `data_args.strict` any of them is an error.
    The scan is cached beside the corpus (or in report_dir when the corpus folder is read-only).

    Only the main process (`is_main`) writes the report and logs it; the others reuse its cached scan.

    Returns:
        (splits without the bad rows, report dict)
    """
    from ser_hf.validation import (
        data_report, partition_rows, raise_if_strict, report_markdown, scan_files, write_data_report,
    )

    data_dir = Path(data_args.data_dir)
    cache_dir = data_dir if os.access(data_dir, os.W_OK) else Path(report_dir)
    paths = [row["path"] for rows in splits.values() for row in rows]
    results = scan_files(paths, max_seconds=data_args.max_audio_seconds, workers=data_args.scan_workers,
                         cache_path=cache_dir / ".ser_hf_scan_cache.json")
    notes = Counter(note for r in results.values() if r.status == "ok" for note in r.notes)
    kept, excluded = {}, {}
    for name, rows in splits.items():
        kept[name], excluded[name] = partition_rows(rows, results)
    report = data_report(excluded, notes_count=dict(notes))
    if is_main:
        if report["n_excluded"]:
            logger.warning("Audio scan excluded %d file(s):\n%s", report["n_excluded"], report_markdown(report))
        else:
            logger.info("Audio scan: all %d files decode cleanly", len(paths))
        # The report is pushed with the model: paths relative to the corpus, as in the predictions CSV.
        files = [{**f, "path": os.path.relpath(f["path"], data_dir)} for f in report["files"]]
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        write_data_report({**report, "files": files}, Path(report_dir) / "data_report.json")
    if data_args.strict:
        raise_if_strict(report)  # on every process: none is left waiting for a main process that raised
    return kept, {**report, "files": files} if is_main else report


def to_dataset(rows, label2id, limit=None):
    """Build a `datasets.Dataset` whose "audio" column decodes to 16 kHz and whose "length" allows length grouping."""
    rows = rows[:limit] if limit else rows
    unknown = sorted({row["label"] for row in rows} - set(label2id))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label set {list(label2id)}")
    table = {
        "audio": [row["path"] for row in rows],
        "path": [row["path"] for row in rows],
        "speaker": [row.get("speaker") or "" for row in rows],
        "label": [label2id[row["label"]] for row in rows],
        # The audio scan measured each kept clip; unscanned rows fall back to the file header.
        "length": [int((row.get("duration") or audio_duration_seconds(row["path"])) * SAMPLE_RATE) for row in rows],
    }
    return Dataset.from_dict(table).cast_column("audio", Audio(sampling_rate=SAMPLE_RATE))


def build_datasets(splits, label2id, feature_extractor, data_args):
    """Wrap each split in its on-the-fly transform: random crops for training, whole clips for evaluation."""
    datasets = DatasetDict()
    for name, rows in splits.items():
        train = name == "train"
        limit = data_args.max_train_samples if train else data_args.max_eval_samples
        max_seconds = data_args.max_duration_seconds if train else data_args.eval_max_duration_seconds
        # Seeded from torch's RNG per call (see ser_hf.augment), which the Trainer seeds and checkpoints.
        augment = build_augmentation(data_args.augmentation, seed=0) if train else None
        transform = AudioTransform(feature_extractor, max_seconds=max_seconds, train=train, augment=augment)
        datasets[name] = to_dataset(rows, label2id, limit=limit).with_transform(transform)
    return datasets

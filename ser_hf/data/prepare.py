"""From a corpus folder to speaker-independent `datasets` splits ready for the Trainer.

One call does it all for a run (`prepare_corpus`, as alignment-handbook's `get_dataset`):

    data = prepare_corpus(data_args, output_dir)   # load -> split by speaker -> audio scan -> decoded-audio cache
    datasets = data.datasets(label2id, feature_extractor, data_args)

Its steps are public too, for callers that need one of them alone: `load_corpus` (rows and labels),
`prepare_splits` (speaker folds), `exclude_bad_audio` (the scan), `audio_loader` (the cache), `build_datasets`.
"""

import dataclasses
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datasets import Dataset, DatasetDict

from ser_hf.corpora import get_corpus
from ser_hf.corpora.emobox import EMOBOX_REPOSITORY, emobox_fold_name, emobox_folds
from ser_hf.corpora.files import corpus_relative
from ser_hf.corpora.manifest import labels_from_rows, load_user_splits
from ser_hf.corpora.registry import manifest_columns
from ser_hf.data.audio import SAMPLE_RATE, AudioTransform, audio_duration_seconds, decode_16k_mono
from ser_hf.data.audio_cache import AUDIO_CACHE_DIRNAME, DecodedAudioCache
from ser_hf.data.augment import build_augmentation
from ser_hf.data.dimensions import TARGET_KEY, rows_with_targets
from ser_hf.data.scan import (
    data_report,
    partition_rows,
    raise_if_strict,
    report_markdown,
    scan_files,
    write_data_report,
)
from ser_hf.data.splits import describe_split, speaker_folds, split_by_fold, stratified_split
from ser_hf.errors import UsageError, count
from ser_hf.labels import DIMENSIONS

logger = logging.getLogger(__name__)

# The run's DataArguments, saved in its output dir so that recipes/evaluate_model.py can rebuild the same splits.
DATA_ARGS_FILE = "data_args.json"


def resolve_data_args(data_args):
    """The DataArguments with the corpus's own defaults filled in, as the run records them in data_args.json.

    `data_dir` defaults to the corpus's folder in the registry (data/ravdess, data/demo), the manifest's folder, or
    data/hub/<dataset>; `labels` to the corpus's default label set. Called where a command starts, before any
    data work, so a corpus that needs `--data_dir` or a label set it lacks fails in the first second.

    Raises:
        UsageError: the corpus needs --data_dir, --labels names a set the corpus does not have, or
            --fold_scheme emobox does not fit the corpus or the fold settings.
    """
    spec = get_corpus(data_args.corpus)
    if data_args.corpus == "emobox" and not data_args.emobox_dir:
        raise UsageError("--corpus emobox needs --emobox_dir EmoBox/data/<dataset>, EmoBox's folder of the corpus "
                         "(--data_dir, the folder its wav paths start from, is by default two folders up)")
    data_dir = data_args.data_dir
    manifest = data_args.manifest or data_args.train_manifest
    if data_dir is None and manifest:
        data_dir = str(Path(manifest).parent)
    elif data_dir is None and data_args.corpus == "emobox":  # EmoBox's wav paths are relative to its checkout
        data_dir = str(Path(data_args.emobox_dir).resolve().parent.parent)
    elif data_dir is None and data_args.corpus == "hub":
        data_dir = str(Path("data/hub") / data_args.dataset_name.replace("/", "__"))
    elif data_dir is None:
        data_dir = spec.default_data_dir
    if data_dir is None:
        raise UsageError(f"--corpus {spec.name} needs --data_dir: the folder that holds {spec.display_name}")
    if spec.label_sets is None and data_args.labels is not None:
        raise UsageError(f"--labels chooses among a corpus's label sets; {spec.display_name} has one (drop --labels)")
    try:
        labels = spec.resolve_label_set(data_args.labels) if spec.label_sets is not None else None
    except ValueError as err:
        raise UsageError(str(err)) from None
    # Official splits have no held-out fold; a fold corpus's held-out fold is validation or test.
    held_out = None if spec.official_splits else data_args.held_out_split or spec.held_out
    n_folds = data_args.n_folds
    if spec.fold_splits is not None:  # EmoBox's files: as many folds as it publishes, each scored on its test file
        n_folds, held_out = _file_fold_count(data_args), "test"
    _check_protocol(data_args, spec, held_out)
    _check_fold_scheme(data_args)
    for name in ("manifest", "train_manifest", "validation_manifest", "test_manifest"):
        path = getattr(data_args, name)
        if path and not Path(path).is_file():
            raise UsageError(f"--{name} {path}: no such file")
    resolved = dataclasses.replace(data_args, data_dir=data_dir, labels=labels, held_out_split=held_out,
                                   n_folds=n_folds)
    if spec.fold_splits is not None and not 0 <= resolved.fold < n_folds:
        raise UsageError(f"--fold {resolved.fold}: EmoBox has {n_folds} folds for this corpus (0..{n_folds - 1})")
    return resolved


def _file_fold_count(data_args):
    from ser_hf.corpora.emobox_data import fold_numbers

    if data_args.fold_scheme == "emobox" or data_args.test_fold is not None or data_args.pseudo_pool_fold is not None:
        raise UsageError("--corpus emobox runs EmoBox's own fold files: drop --fold_scheme, --test_fold and "
                         "--pseudo_pool_fold")
    return len(fold_numbers(data_args.emobox_dir))


def _check_protocol(data_args, spec, held_out):
    """Refuse fold settings the corpus's protocol does not have, before any data work."""
    if spec.official_splits:
        for name, value in (("fold_scheme", data_args.fold_scheme != "ser_hf"), ("test_fold", data_args.test_fold),
                            ("pseudo_pool_fold", data_args.pseudo_pool_fold),
                            ("held_out_split", data_args.held_out_split == "test")):
            if value not in (None, False):
                raise UsageError(f"--{name}: {spec.display_name} is evaluated on its release's own splits (train, "
                                 "development, test sets), not on folds; drop it")
        return
    if spec.n_folds is not None and data_args.fold_scheme == "ser_hf" and data_args.n_folds != spec.n_folds:
        raise UsageError(f"{spec.display_name} has {spec.n_folds} folds of its own (one session each): set "
                         f"--n_folds {spec.n_folds}")
    if held_out == "test":
        if data_args.test_fold is not None:
            raise UsageError("--test_fold with --held_out_split test: the held-out fold (--fold) is the test split "
                             "already, and the next fold the validation split; drop --test_fold")
        if data_args.pseudo_pool_fold is not None:
            raise UsageError("--pseudo_pool_fold with --held_out_split test is not supported: use the default "
                             "--held_out_split validation")


def validation_fold(data_args):
    """The fold that selects the checkpoint: --fold itself, or with --held_out_split test the next one."""
    return (data_args.fold + 1) % data_args.n_folds if data_args.held_out_split == "test" else data_args.fold


def _check_fold_scheme(data_args):
    """Refuse --fold_scheme emobox where EmoBox has no folds we use, or with fold settings that contradict them."""
    if data_args.fold_scheme != "emobox":
        return
    try:
        folds = emobox_folds(data_args.corpus)
    except ValueError as err:
        raise UsageError(f"--fold_scheme emobox: {err}") from None
    if data_args.n_folds != len(folds):
        # Cross-validation runs folds 0..n_folds-1: anything but EmoBox's count would not be EmoBox's protocol.
        raise UsageError(f"--fold_scheme emobox: EmoBox has {len(folds)} folds for {data_args.corpus}, not "
                         f"--n_folds {data_args.n_folds} (set --n_folds {len(folds)})")
    if data_args.fold_seed is not None:
        raise UsageError("--fold_scheme emobox: EmoBox's folds are fixed; --fold_seed shuffles only ser_hf's own "
                         "folds (drop --fold_seed)")


def load_corpus(data_args, task="emotion"):
    """Find, download or generate a whole corpus and return its metadata rows and label set.

    Args:
        data_args: `DataArguments`; `data_args.corpus` picks the corpus in the registry (`ser_hf.corpora`).
        task: `--task`; "dimensional" loads every clip with ratings where the corpus's task keeps fewer
            (`CorpusSpec.load_rated`).

    Returns:
        (rows: dicts with at least path and label, and speaker/gender where the corpus has them;
         label_names in id order, fixed by code for the known corpora)
    """
    spec = get_corpus(data_args.corpus)
    return (spec.load_rated if task == "dimensional" and spec.load_rated else spec.load)(data_args)


@dataclass
class PreparedSplits:
    """A corpus split for one run, and what the model card must say about it.

    Attributes:
        splits: {"train", "validation"[, "test"]} -> metadata rows.
        label_names: class names in id order.
        split_names: {"validation"[, "test"]} -> the split as the card names it, e.g.
            "validation (fold 0: Actor_01, ...)".
        protocol: one sentence on how the split was made.
        speaker_independent: no speaker has clips in two splits, and every clip's speaker is known.
        excluded: {why: clips} the corpus loader left out by label (IEMOCAP's frustrated, MSP-Podcast's O / X).
    """

    splits: dict
    label_names: list
    split_names: dict
    protocol: str
    speaker_independent: bool
    excluded: dict = dataclasses.field(default_factory=dict)

    @property
    def split_name(self):
        """The validation split's name."""
        return self.split_names["validation"]


def _speaker_independent(splits):
    speakers = [{row.get("speaker") for row in rows} for rows in splits.values()]
    known = all(None not in s and "" not in s for s in speakers)
    return known and sum(len(s) for s in speakers) == len(set().union(*speakers))


def prepare_splits(data_args, corpus=None, task="emotion"):
    """Load the corpus and split it, speaker-independently whenever speakers are known.

    - Known corpora and manifests with a speaker column: `n_folds` folds of speakers (gender-balanced where
      gender is known), fold `fold` for validation, `test_fold` for test; with `fold_scheme="emobox"`, EmoBox's
      published folds instead (`ser_hf.corpora.emobox`).
    - `train_manifest`/`validation_manifest`(/`test_manifest`): the user's own split, labels from train.
    - No speaker column: a stratified split, with a loud warning that speakers may leak.

    Args:
        data_args: `DataArguments`.
        corpus: `load_corpus(data_args)` when the caller already has it (one load for every fold of a
            cross-validation); loaded here otherwise.
        task: `--task`; "dimensional" gives every row its scaled targets (`ser_hf.data.dimensions`), the label
            names are `DIMENSIONS`, and the checks of emotion labels (at least 2, each in training) do not apply.

    Returns:
        `PreparedSplits`.
    """
    data_args = resolve_data_args(data_args)  # a no-op for the commands, which resolved them at start
    emotions = task != "dimensional"
    if data_args.train_manifest:
        splits = load_user_splits(train=data_args.train_manifest, validation=data_args.validation_manifest,
                                  test=data_args.test_manifest, **manifest_columns(data_args))
        protocol = ("The user's own train/validation" + ("/test" if data_args.test_manifest else "")
                    + " files; speaker independence is what those files make it (overlaps are warned about).")
        names = {"validation": f"validation ({data_args.validation_manifest})"}
        if data_args.test_manifest:
            names["test"] = f"test ({data_args.test_manifest})"
        if emotions:
            check_label_count([row for rows in splits.values() for row in rows], data_args.train_manifest)
        return _for_task(PreparedSplits(splits, labels_from_rows(splits["train"]), names, protocol,
                                        _speaker_independent(splits)), data_args, task)
    rows, label_names = corpus or load_corpus(data_args, task)
    if emotions:
        check_label_count(rows, _corpus_source(data_args))
    spec = get_corpus(data_args.corpus)
    if spec.official_splits:
        splits, names, protocol = _official_split(rows, spec)
    elif spec.fold_splits is not None:
        splits, names, protocol = _file_fold_split(spec.fold_splits(data_args, data_args.fold), data_args)
    elif all(row.get("speaker") for row in rows):
        splits, names, protocol = _fold_split(rows, data_args)
    else:
        splits = stratified_split(rows, eval_fraction=1 / data_args.n_folds, seed=data_args.fold_seed or 0)
        names = {"validation": "validation (stratified, speakers unknown: may leak)"}
        protocol = ("Stratified by class, NOT speaker-independent: the corpus has no speaker column, so the same "
                    "voices may be in training and evaluation and the scores may be optimistic.")
    known_speakers = all(row.get("speaker") for row in rows)
    logger.info("Split:\n%s", describe_split(splits) if known_speakers else {k: len(v) for k, v in splits.items()})
    if emotions:
        check_training_labels(splits, label_names)
    if spec.protocol:
        protocol = f"{spec.protocol} {protocol}"
    return _for_task(PreparedSplits(splits, label_names, names, protocol, _speaker_independent(splits),
                                    excluded=getattr(rows, "excluded", {})), data_args, task)


def _for_task(prepared, data_args, task):
    """--task dimensional: every row with its scaled targets (refusing a missing or bad rating), DIMENSIONS as names."""
    if task != "dimensional":
        return prepared
    splits = {name: rows_with_targets(rows, data_args, getattr(data_args, f"{name}_manifest", None)
                                      or _corpus_source(data_args))
              for name, rows in prepared.splits.items()}
    return dataclasses.replace(prepared, splits=splits, label_names=list(DIMENSIONS))


def _file_fold_split(splits, data_args):
    """A fold given as files (train, test[, validation]); without a validation file, the validation split is taken
    from the training file: whole speakers when they are known (a tenth of them, at least one), else a stratified
    tenth of the clips. The test file takes no part in selection.

    Returns:
        (splits, names, the protocol sentence)
    """
    fold_name = f"EmoBox fold_{data_args.fold + 1}"
    names = {"test": f"test ({fold_name}'s test file)"}
    if "validation" in splits:
        names["validation"] = f"validation ({fold_name}'s valid file)"
        carved = "its valid file selects the checkpoint"
    else:
        train = splits["train"]
        known = sorted({row["speaker"] for row in train if row.get("speaker")}, key=str)
        if known and all(row.get("speaker") for row in train) and len(known) >= 2:
            count = max(1, round(len(known) / 10))
            chosen = set(known[::len(known) // count][:count])  # evenly spaced in sorted order: deterministic
            splits = {**splits, "train": [r for r in train if r["speaker"] not in chosen],
                      "validation": [r for r in train if r["speaker"] in chosen]}
            carved = f"the validation split is {len(chosen)} of its {len(known)} training speakers ({', '.join(sorted(chosen))})"
        else:
            split = stratified_split(train, eval_fraction=0.1, seed=0)
            splits = {**splits, "train": split["train"], "validation": split["validation"]}
            carved = "the validation split is a stratified tenth of its training clips (speakers unknown)"
        names["validation"] = "validation (from the fold's train file)"
    splits = {name: splits[name] for name in ("train", "validation", "test")}
    independent = _speaker_independent(splits)
    protocol = (f"{fold_name}: trained on its train file, {carved}; scored on its test file. "
                + ("No speaker appears in two splits." if independent else
                   "NOT speaker-independent: EmoBox's fold puts the same speakers on both sides, or speakers are "
                   "unknown, so the scores may be optimistic."))
    if not independent:
        logger.warning("%s is NOT speaker-independent (the same or unknown speakers in training and test): its "
                       "scores may be optimistic", fold_name)
    return splits, names, protocol


def _official_split(rows, spec):
    """The release's own split (rows' `split`), as MSP-Podcast defines it.

    Raises:
        UsageError: the rows have no training or no validation clips.
    """
    splits = {}
    for row in rows:
        splits.setdefault(row["split"], []).append(row)
    for needed in ("train", "validation"):
        if not splits.get(needed):
            raise UsageError(f"{spec.display_name}: no {needed} clips in the release's split (have "
                             f"{', '.join(sorted(splits)) or 'none'})")
    order = ["train", "validation", "test", "test2", "test3"]
    splits = {name: splits[name] for name in order if name in splits}
    names = {name: f"{name} (the release's {release})" for name, release in
             (("validation", "Development set"), ("test", "Test1"), ("test2", "Test2"), ("test3", "Test3"))
             if name in splits}
    unknown = sum(1 for row in rows if not row.get("speaker"))
    protocol = (f"{unknown} clips have no known speaker, so no split can be called speaker-independent."
                if unknown else "No speaker appears in two splits." if _speaker_independent(splits) else
                "Some speakers appear in two splits.")
    return splits, names, protocol


def _corpus_source(data_args):
    return data_args.manifest or f"{data_args.corpus} corpus in {data_args.data_dir}"


def check_label_count(rows, source):
    """Refuse a corpus whose clips carry fewer than 2 labels: a 1-label classifier would report 100 %.

    Raises:
        UsageError: naming the label found (or none) and where.
    """
    counts = Counter(row["label"] for row in rows)
    if len(counts) < 2:
        found = ", ".join(f"{label!r} ({n} clips)" for label, n in counts.items()) or "no labelled clips"
        raise UsageError(f"{source}: a classifier needs at least 2 labels, found {found}. Check the label column "
                         "(--label_column) or the corpus folder.")


def check_training_labels(splits, label_names):
    """Refuse a split whose training part has no clip of a label that the evaluated splits have: the model could
    never predict it, and its UA would be capped without saying why. A label absent from every split (a subset of
    a corpus with a fixed label set) is only warned about.

    Raises:
        UsageError: naming the label and where its clips are.
    """
    counts = class_counts(splits, label_names)
    for label in label_names:
        elsewhere = {name: n[label] for name, n in counts.items() if name != "train" and n[label]}
        if counts["train"][label]:
            continue
        if elsewhere:
            where = ", ".join(f"{n} in {name}" for name, n in elsewhere.items())
            raise UsageError(f"label {label!r} has no training clips ({where}): the model could never predict it. "
                             "Choose other folds (--fold, --n_folds), move those speakers into training, or drop "
                             "the label's clips from the corpus.")
        logger.warning("Label %r has no clips in this corpus: the model keeps an output for it that never trains",
                       label)


def _fold_split(rows, data_args):
    """Split rows with a speaker each by speaker fold: ser_hf's own folds or, with --fold_scheme emobox, EmoBox's.

    Returns:
        (splits, {split: the name the card gives it}, the protocol sentence)
    """
    emobox = data_args.fold_scheme == "emobox"
    if emobox:
        folds = emobox_folds(data_args.corpus)
        scheme = (f"EmoBox folds, the {len(folds)} folds of speakers EmoBox published ({EMOBOX_REPOSITORY}, "
                  f"data/{data_args.corpus}/fold_*)")
    elif get_corpus(data_args.corpus).folds is not None:
        folds = get_corpus(data_args.corpus).folds(rows)
        if len(folds) != data_args.n_folds:
            raise UsageError(f"{get_corpus(data_args.corpus).display_name} in {data_args.data_dir} gives {len(folds)} "
                             f"folds, not {data_args.n_folds}: is a session missing?")
        scheme = f"the corpus's own {len(folds)} folds"
    else:
        speaker_to_gender = {row["speaker"]: row.get("gender") or "unknown" for row in rows}
        folds = speaker_folds(speaker_to_gender, n_folds=data_args.n_folds, seed=data_args.fold_seed)
        scheme = f"{data_args.n_folds} folds of speakers"
    as_test = data_args.held_out_split == "test"
    validation, test = (validation_fold(data_args), data_args.fold) if as_test else (data_args.fold,
                                                                                      data_args.test_fold)
    # split_by_fold refuses any speaker in two splits, and any speaker in no fold.
    splits = split_by_fold(rows, folds, eval_fold=validation, test_fold=test)
    pool = data_args.pseudo_pool_fold
    if pool is not None:  # its speakers' audio is the pseudo-label pool (ser_hf/data/pseudo_pool.py), never labeled
        splits["train"] = [row for row in splits["train"] if row["speaker"] not in set(folds[pool])]

    def fold_name(k):  # EmoBox numbers its fold folders from 1
        return f"fold {k} = EmoBox {emobox_fold_name(k)}" if emobox else f"fold {k}"

    held_out = {"validation": validation, "test": test}
    names = {split: f"{split} ({fold_name(k)}: {', '.join(folds[k])})"
             for split, k in held_out.items() if k is not None}
    protocol = (f"Speaker-independent: {scheme}, {fold_name(validation)} held out for validation"
                + (f", {fold_name(test)} for test" if test is not None else "")
                + (f", {fold_name(pool)} left out of labeled training (its audio, without labels, is the "
                   "pseudo-label pool)" if pool is not None else "")
                + "; no speaker appears in two splits.")
    return splits, names, protocol


def class_counts(splits, label_names):
    """Clips per class in each split, zeros included, so a missing class is visible.

    Args:
        splits: split name -> rows with a "label".
        label_names: class names in id order.

    Returns:
        {split: {class: clips}}, classes in label order.
    """
    counts = {name: Counter(row["label"] for row in rows) for name, rows in splits.items()}
    return {name: {label: counts[name][label] for label in label_names} for name in splits}


def class_counts_markdown(splits, label_names):
    """Per-class clip counts per split, as a markdown table for the log and the model card.

    Args:
        splits: split name -> rows with a "label".
        label_names: class names in id order (the table's rows).

    Returns:
        The table, with a total row.
    """
    counts = class_counts(splits, label_names)
    names = list(splits)
    lines = ["| class | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label in label_names:
        lines.append(f"| {label} | " + " | ".join(str(counts[name][label]) for name in names) + " |")
    lines.append("| **total** | " + " | ".join(str(len(splits[name])) for name in names) + " |")
    return "\n".join(lines)


CACHE_ENV = "SER_HF_CACHE"  # like HF_HOME / HF_DATASETS_CACHE: one place for every corpus's caches


def cache_dir_for(data_args, report_dir):
    """Where the scan, decoded-audio and probe caches of this corpus live.

    `--cache_dir` (else $SER_HF_CACHE) holds one subfolder per corpus folder, named after it and a hash of its
    absolute path, so that one cache folder serves several corpora and several output dirs (a read-only or shared
    corpus is decoded once, not once per fold). Without either: the corpus folder itself, or `report_dir` (the run's
    output dir) when the corpus folder is read-only.
    """
    data_dir = Path(data_args.data_dir)
    root = getattr(data_args, "cache_dir", None) or os.environ.get(CACHE_ENV)
    if root:
        absolute = data_dir.resolve()
        digest = hashlib.sha1(str(absolute).encode()).hexdigest()[:12]
        return Path(root).expanduser() / f"{absolute.name or 'root'}-{digest}"
    return data_dir if os.access(data_dir, os.W_OK) else Path(report_dir)


def exclude_bad_audio(splits, data_args, report_dir, is_main=True, excluded_by_label=None):
    """Decode every file once and drop the ones training would choke on, with a report.

    Unreadable, empty, truncated, too short, non-finite, silent and suspiciously long files are excluded
    (and listed in `report_dir/data_report.json`); with `data_args.strict` any of them is an error.
    The scan is cached beside the corpus (or in report_dir when the corpus folder is read-only).

    Only the main process (`is_main`) writes the report and logs it; the others reuse its cached scan.

    Args:
        splits: split name -> rows.
        data_args: `DataArguments` (data_dir, max_audio_seconds, scan_workers, strict).
        report_dir: where `data_report.json` goes (the run's output dir).
        is_main: whether this is the main process.
        excluded_by_label: {why: clips} the corpus loader left out by label, recorded in the same report.

    Returns:
        (splits without the bad rows, report dict)
    """
    data_dir = Path(data_args.data_dir)
    paths = [row["path"] for rows in splits.values() for row in rows]
    results = scan_files(paths, max_seconds=data_args.max_audio_seconds, workers=data_args.scan_workers,
                         cache_path=cache_dir_for(data_args, report_dir) / ".ser_hf_scan_cache.json")
    notes = Counter(note for r in results.values() if r.status == "ok" for note in r.notes)
    kept, excluded = {}, {}
    for name, rows in splits.items():
        kept[name], excluded[name] = partition_rows(rows, results)
    report = data_report(excluded, notes_count=dict(notes))
    if excluded_by_label:
        report["excluded_by_label"] = dict(excluded_by_label)
    if is_main:
        if report["n_excluded"]:
            logger.warning("Audio scan excluded %s:\n%s", count(report["n_excluded"], "file"), report_markdown(report))
        else:
            logger.info("Audio scan: all %d files decode cleanly", len(paths))
        # The report is pushed with the model: paths relative to the corpus, as in the predictions CSV.
        files = [{**f, "path": corpus_relative(f["path"], data_dir)} for f in report["files"]]
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        write_data_report({**report, "files": files}, Path(report_dir) / "data_report.json")
    if data_args.strict:
        raise_if_strict(report)  # on every process: none is left waiting for a main process that raised
    return kept, {**report, "files": files} if is_main else report


def to_dataset(rows, label2id, limit=None):
    """Build a `datasets.Dataset` of clip paths, labels and lengths (for length grouping); the transform loads audio.

    Args:
        rows: metadata rows (path, label[, speaker, duration]).
        label2id: label name -> id.
        limit: keep only the first `limit` rows (None or 0: all).

    Returns:
        A Dataset with columns path, speaker, label (id) and length (samples).
        Rows marked with an "intensity_label" id (`--task multitask`) add that column (-100: none).
        Rows with scaled targets (`--task dimensional`, `ser_hf.data.dimensions`) have a "dimensions" column (three
        floats per clip) instead of "label"; `label2id` is not used.

    Raises:
        ValueError: a row's label is not in `label2id`.
    """
    rows = rows[:limit] if limit else rows
    if rows and TARGET_KEY in rows[0]:  # --task dimensional: regression targets, no class
        target = {TARGET_KEY: [[float(v) for v in row[TARGET_KEY]] for row in rows]}
    else:
        unknown = sorted({row["label"] for row in rows} - set(label2id))
        if unknown:
            raise ValueError(f"labels {unknown} are not in the label set {list(label2id)}")
        target = {"label": [label2id[row["label"]] for row in rows]}
    table = {
        "path": [row["path"] for row in rows],
        "speaker": [row.get("speaker") or "" for row in rows],
        **target,
        # The audio scan measured each kept clip; unscanned rows fall back to the file header.
        "length": [int((row.get("duration") or audio_duration_seconds(row["path"])) * SAMPLE_RATE) for row in rows],
    }
    if any("intensity_label" in row for row in rows):  # --task multitask (ser_hf.training.multitask.mark_intensity)
        table["intensity_label"] = [int(row.get("intensity_label", -100)) for row in rows]
    return Dataset.from_dict(table)


def audio_loader(splits, data_args, report_dir):
    """How the datasets read clips: from the decoded-audio cache, filled here (`data_args.audio_cache`), or decoding.

    Args:
        splits: split name -> rows (scanned: `exclude_bad_audio`), every one of which is decoded now if missing.
        data_args: `DataArguments` (data_dir, audio_cache, scan_workers).
        report_dir: the run's output dir, home of the cache when the corpus folder is read-only.

    Returns:
        path -> 1-D 16 kHz float32 array.
    """
    if not data_args.audio_cache:
        return decode_16k_mono
    cache = DecodedAudioCache(cache_dir_for(data_args, report_dir) / AUDIO_CACHE_DIRNAME)
    cache.fill([row["path"] for rows in splits.values() for row in rows], workers=data_args.scan_workers)
    return cache.load


def build_datasets(splits, label2id, feature_extractor, data_args, load_audio=decode_16k_mono):
    """Wrap each split in its on-the-fly transform: random crops for training, whole clips for evaluation.

    Args:
        splits: split name -> rows; "train" gets the training transform.
        label2id: label name -> id.
        feature_extractor: the model's feature extractor.
        data_args: `DataArguments` (crop lengths, sample limits, augmentation).
        load_audio: path -> 16 kHz clip, from `audio_loader`.

    Returns:
        A `DatasetDict` with one transformed Dataset per split.
    """
    datasets = DatasetDict()
    for name, rows in splits.items():
        train = name == "train"
        limit = data_args.max_train_samples if train else data_args.max_eval_samples
        max_seconds = data_args.max_duration_seconds if train else data_args.eval_max_duration_seconds
        # Seeded from torch's RNG per call (see ser_hf.data.augment), which the Trainer seeds and checkpoints.
        augment = build_augmentation(data_args.augmentation, seed=0) if train else None
        transform = AudioTransform(load_audio, feature_extractor, max_seconds=max_seconds, train=train, augment=augment)
        datasets[name] = to_dataset(rows, label2id, limit=limit).with_transform(transform)
    return datasets


@dataclass
class PreparedData(PreparedSplits):
    """A corpus ready for a run: its scanned splits, what the model card says about them, and how clips are read.

    Attributes (besides `PreparedSplits`'s, whose `splits` here hold only the clips the audio scan kept):
        scan_report: the audio scan's report (`exclude_bad_audio`), also written to report_dir/data_report.json.
        load_audio: path -> 1-D 16 kHz float32 clip (the decoded-audio cache, or decoding every time).
    """

    scan_report: dict | None = None
    load_audio: Callable = decode_16k_mono

    def datasets(self, label2id, feature_extractor, data_args, splits=None):
        """`build_datasets` over these splits (or `splits`, e.g. with pseudo-labelled rows added)."""
        return build_datasets(self.splits if splits is None else splits, label2id, feature_extractor, data_args,
                              self.load_audio)


def prepare_corpus(data_args, report_dir, corpus=None, prepared=None, keep=None, is_main=True, decode=True,
                   task="emotion"):
    """The data of a run in one call: the corpus found, downloaded or generated, split speaker-independently,
    scanned (bad files reported and excluded before any training) and decoded once into the audio cache.

    Args:
        data_args: `DataArguments`.
        report_dir: where the scan report goes (the run's output dir); home of the caches when the corpus folder
            is read-only.
        corpus: `load_corpus(data_args)` when the caller already has it (one load for many folds).
        prepared: `prepare_splits(data_args)` when the caller already made the split (to check it first).
        keep: the split names to keep (e.g. ["test"]); default all.
        is_main: the main process writes the scan report and logs it; the others reuse its cached scan.
        decode: fill the decoded-audio cache now (`data_args.audio_cache`); False for callers that read no audio
            through `load_audio` (the SVM baseline extracts its own features).
        task: `--task` (see `prepare_splits`); a `prepared` given must have been made for the same task.

    Returns:
        `PreparedData`.
    """
    data_args = resolve_data_args(data_args)  # a no-op for the commands, which resolved them at start
    prepared = prepared or prepare_splits(data_args, corpus, task=task)
    splits = {name: rows for name, rows in prepared.splits.items() if keep is None or name in keep}
    classes = task != "dimensional"  # a regression has no class that the scan could empty
    before = class_counts(splits, prepared.label_names) if classes else None
    splits, report = exclude_bad_audio(splits, data_args, report_dir, is_main=is_main,
                                       excluded_by_label=prepared.excluded)
    if classes:
        _check_classes_survived_the_scan(before, class_counts(splits, prepared.label_names), report_dir)
    load_audio = audio_loader(splits, data_args, report_dir) if decode else decode_16k_mono
    return PreparedData(splits, prepared.label_names, prepared.split_names, prepared.protocol,
                        prepared.speaker_independent, excluded=prepared.excluded, scan_report=report,
                        load_audio=load_audio)


def _check_classes_survived_the_scan(before, after, report_dir):
    """Refuse a split in which the audio scan excluded every clip of a class: training could not learn it, or the
    evaluation would silently score one class fewer."""
    for split, counts in before.items():
        lost = [label for label, n in counts.items() if n and not after[split][label]]
        if lost:
            shown = ", ".join(f"{label!r} ({counts[label]} clips)" for label in lost)
            raise UsageError(f"the audio scan excluded every {split} clip of {shown}: fix or replace those files "
                             f"(listed in {Path(report_dir) / 'data_report.json'}) before training")

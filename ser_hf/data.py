"""From a corpus folder to speaker-independent `datasets` splits ready for the Trainer."""

import logging

from datasets import Audio, Dataset, DatasetDict

from ser_hf.audio import SAMPLE_RATE, AudioTransform, audio_duration_seconds
from ser_hf.labels import RAVDESS_EMOTIONS

logger = logging.getLogger(__name__)

# What the model card says about each corpus.
CORPUS_INFO = {
    "ravdess": {
        "name": "RAVDESS",
        "dataset_id": None,
        "license": "cc-by-nc-sa-4.0",
        "labels": RAVDESS_EMOTIONS,
    },
    "demo": {
        "name": "ser_hf synthetic demo corpus (espeak-ng, RAVDESS layout)",
        "dataset_id": None,
        "license": "apache-2.0",
        "labels": RAVDESS_EMOTIONS,
    },
}


def load_corpus(data_args):
    """Find, download or generate the corpus and return its metadata rows.

    Args:
        data_args: `DataArguments`.

    Returns:
        list of dicts with at least path, speaker, gender, emotion.
    """
    from ser_hf.corpora.ravdess import load_ravdess, prepare_ravdess

    if data_args.corpus == "demo":
        from ser_hf.demo_corpus import synthesize_demo_corpus

        synthesize_demo_corpus(data_args.data_dir, seed=data_args.demo_seed)
        return load_ravdess(data_args.data_dir)
    return prepare_ravdess(data_args.data_dir, download=data_args.download)


def split_corpus(rows, data_args):
    """Speaker-independent split: train / validation (the eval fold) / test (optional second fold).

    Returns:
        (splits: dict name -> rows, folds: list of speaker lists)
    """
    from ser_hf.splits import describe_split, speaker_folds, split_by_fold

    speaker_to_gender = {row["speaker"]: row["gender"] for row in rows}
    folds = speaker_folds(speaker_to_gender, n_folds=data_args.n_folds, seed=data_args.fold_seed)
    # split_by_fold refuses any speaker in two splits.
    splits = split_by_fold(rows, folds, eval_fold=data_args.fold, test_fold=data_args.test_fold)
    logger.info("Speaker-independent split:\n%s", describe_split(splits))
    return splits, folds


def to_dataset(rows, label2id, limit=None):
    """Build a `datasets.Dataset` whose "audio" column decodes to 16 kHz and whose "length" allows length grouping."""
    rows = rows[:limit] if limit else rows
    unknown = sorted({row["emotion"] for row in rows} - set(label2id))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label set {list(label2id)}")
    table = {
        "audio": [row["path"] for row in rows],
        "path": [row["path"] for row in rows],
        "speaker": [row["speaker"] for row in rows],
        "label": [label2id[row["emotion"]] for row in rows],
        "length": [int(audio_duration_seconds(row["path"]) * SAMPLE_RATE) for row in rows],
    }
    return Dataset.from_dict(table).cast_column("audio", Audio(sampling_rate=SAMPLE_RATE))


def build_datasets(splits, label2id, feature_extractor, data_args, seed=0):
    """Wrap each split in its on-the-fly transform: random crops for training, whole clips for evaluation."""
    datasets = DatasetDict()
    for name, rows in splits.items():
        train = name == "train"
        limit = data_args.max_train_samples if train else data_args.max_eval_samples
        max_seconds = data_args.max_duration_seconds if train else data_args.eval_max_duration_seconds
        transform = AudioTransform(feature_extractor, max_seconds=max_seconds, train=train, seed=seed)
        datasets[name] = to_dataset(rows, label2id, limit=limit).with_transform(transform)
    return datasets

"""ser_hf.data.dimensions and --task dimensional in the data layer: ratings scaled to [0, 1] once, the refusals of a
missing, non-numeric or out-of-range rating, the corpus checks, and float targets through prepare, the transform and
the collator."""

import csv

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2FeatureExtractor

from ser_hf.config import DataArguments
from ser_hf.corpora import CORPORA
from ser_hf.data.audio import AudioTransform, decode_16k_mono
from ser_hf.data.collator import AudioCollator
from ser_hf.data.dimensions import (
    check_dimensional_data,
    dimension_range,
    dimension_targets,
    target_mean,
    target_stats_markdown,
)
from ser_hf.data.prepare import prepare_corpus, prepare_splits, to_dataset
from ser_hf.errors import UsageError
from ser_hf.labels import DIMENSIONS
from tests.conftest import write_tone

RATED = next(name for name, spec in CORPORA.items() if spec.dimension_range is not None)  # IEMOCAP


def _row(**values):
    return {"path": "/corpus/a.wav", **values}


def test_targets_are_scaled_from_the_range_in_dimension_order():
    rows = [_row(arousal="5", valence=" 1 ", dominance=3.0), _row(arousal=2, valence=4.5, dominance="1.0")]
    scaled = dimension_targets(rows, 1, 5, "corpus.csv")
    assert [row["dimensions"] for row in scaled] == [[1.0, 0.5, 0.0], [0.25, 0.0, 0.875]]  # arousal, dominance, valence
    assert "dimensions" not in rows[0]  # the caller's rows are left as they were
    assert target_mean(scaled) == pytest.approx([0.625, 0.25, 0.4375])
    table = target_stats_markdown({"train": scaled, "validation": scaled[:1]})
    assert "| arousal | 0.625 +- 0.375 | 1.000 +- 0.000 |" in table and "| **clips** | 2 | 1 |" in table


def test_default_range_is_zero_to_one_and_a_corpus_knows_its_own():
    manifest = DataArguments(corpus="manifest", manifest="m.csv")
    assert dimension_range(manifest) == (0.0, 1.0)
    assert dimension_range(DataArguments(corpus="manifest", manifest="m.csv", dimension_range="1,7")) == (1.0, 7.0)
    assert dimension_range(DataArguments(corpus=RATED)) == tuple(map(float, CORPORA[RATED].dimension_range))


@pytest.mark.parametrize("rows, message", [
    ([_row(arousal=1, valence=1)], r"corpus.csv: no 'dominance' column; .*arousal, valence and dominance columns"),
    ([_row(arousal=1, valence=1, dominance=1), _row(arousal="", valence=1, dominance=1)],
     r"corpus.csv: clip /corpus/a.wav has no arousal rating"),
    ([_row(arousal="high", valence=1, dominance=1)], r"clip /corpus/a.wav has arousal='high', which is not a number"),
    ([_row(arousal="nan", valence=1, dominance=1)], r"arousal='nan', which is not a number"),
    ([_row(arousal=1, valence=6, dominance=1)],
     r"clip /corpus/a.wav has valence=6, outside the scale 1-5: set --dimension_range LOW,HIGH"),
])
def test_a_bad_rating_is_refused_naming_the_file_clip_column_and_value(rows, message):
    with pytest.raises(UsageError, match=message) as caught:
        dimension_targets(rows, 1, 5, "corpus.csv")
    assert "\n" not in str(caught.value)


def test_a_corpus_with_its_own_scale_is_not_told_to_set_dimension_range():
    with pytest.raises(UsageError, match="outside the scale 1-5: correct the rating") as caught:
        dimension_targets([_row(arousal=0, valence=1, dominance=1)], 1, 5, "IEMOCAP", scale_flag=False)
    assert "--dimension_range" not in str(caught.value)


def test_only_corpora_with_ratings_take_the_task():
    with pytest.raises(UsageError, match=f"RAVDESS does not have: use --corpus {RATED}.* or --corpus manifest"):
        check_dimensional_data(DataArguments(corpus="ravdess"))
    with pytest.raises(UsageError, match="--dimension_range is for a manifest"):
        check_dimensional_data(DataArguments(corpus=RATED, dimension_range="1,5"))
    check_dimensional_data(DataArguments(corpus="manifest", manifest="m.csv"))  # a manifest may have them
    check_dimensional_data(DataArguments(corpus=RATED))


@pytest.fixture
def rated_manifest(tmp_path):
    """4 speakers x 2 clips, one label for all (no emotion classes), ratings on 1-7."""
    rows = []
    for speaker in range(4):
        for clip in range(2):
            path = write_tone(tmp_path / f"s{speaker}_{clip}.wav", 0.5, 200 + 50 * clip, seed=speaker * 10 + clip)
            rows.append({"path": path.name, "label": "speech", "speaker": f"s{speaker}", "arousal": 1 + speaker,
                         "valence": 7 - speaker, "dominance": 4})
    with open(tmp_path / "corpus.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path / "corpus.csv"


def test_prepare_gives_dimensional_splits_without_the_emotion_label_checks(rated_manifest, tmp_path):
    data_args = DataArguments(corpus="manifest", manifest=str(rated_manifest), n_folds=4, fold=0, dimension_range="1,7",
                              scan_workers=1)
    with pytest.raises(UsageError, match="at least 2 labels"):  # as an emotion corpus: one label only
        prepare_splits(data_args)
    prepared = prepare_splits(data_args, task="dimensional")
    assert prepared.label_names == list(DIMENSIONS) and prepared.speaker_independent
    assert sorted(len(rows) for rows in prepared.splits.values()) == [2, 6]  # speaker folds as for emotions
    scaled = {row["speaker"]: row["dimensions"] for rows in prepared.splits.values() for row in rows}
    assert scaled["s0"] == [0.0, 0.5, 1.0] and scaled["s3"] == [0.5, 0.5, 0.5]
    data = prepare_corpus(data_args, tmp_path / "report", task="dimensional")
    assert data.label_names == list(DIMENSIONS) and sum(len(rows) for rows in data.splits.values()) == 8


def test_float_targets_reach_the_collator_as_a_batch_by_3_tensor(rated_manifest):
    data_args = DataArguments(corpus="manifest", manifest=str(rated_manifest), n_folds=4, fold=0, dimension_range="1,7")
    rows = prepare_splits(data_args, task="dimensional").splits["train"]
    dataset = to_dataset(rows, label2id={})
    assert "label" not in dataset.column_names and len(dataset[0]["dimensions"]) == 3
    transform = AudioTransform(decode_16k_mono, Wav2Vec2FeatureExtractor(), max_seconds=None, train=False)
    items = dataset.with_transform(transform)
    batch = AudioCollator()([items[i] for i in range(3)])
    assert batch["labels"].dtype == torch.float32 and tuple(batch["labels"].shape) == (3, 3)
    np.testing.assert_allclose(batch["labels"].numpy(), [row["dimensions"] for row in rows[:3]], rtol=1e-6)
    # Emotion batches keep their class ids.
    assert AudioCollator()([{"input_values": np.zeros(400, np.float32), "labels": 2}])["labels"].dtype == torch.long

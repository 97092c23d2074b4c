"""End-to-end: one pseudo-labelling round on generated audio with a tiny random model."""

import csv
import json

import pytest

from ser_hf.labels import RAVDESS_EMOTIONS
from ser_hf.reporting.hub import files_to_upload
from tests.conftest import TINY_ENCODER, tiny_run_args, train, write_tone

pytestmark = pytest.mark.slow


def _argv(data_dir, output_dir, **overrides):
    return tiny_run_args(data_dir, output_dir, model_config_overrides={**TINY_ENCODER, "feat_extract_norm": "layer"},
                         padding="longest", per_device_eval_batch_size=8, learning_rate="1e-3", eval_strategy="no",
                         save_strategy="no", logging_steps=1, remove_unused_columns=False, seed=1, scan_workers=1,
                         disable_tqdm=True, **overrides)


def test_one_round_adds_confident_clips_and_reports_them(ravdess_tree, tmp_path):
    pool = tmp_path / "unlabeled"
    for i in range(6):
        write_tone(pool / f"street_{i}.wav", 0.6 + 0.1 * i, 240 + 90 * i, seed=900 + i)
    (pool / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")  # reported and left out, not fatal
    out = tmp_path / "run"
    # A random tiny model scores about 1/8 per class: 0.1 lets clips through, as a trained model's 0.9 would.
    results = train(_argv(ravdess_tree, out, unlabeled_dir=pool, pseudo_threshold=0.1))

    report = json.loads((out / "pseudo_rounds.json").read_text())
    assert report["pool"]["files"] == 7 and report["pool"]["excluded_by_scan"] == 1
    assert report["pool"]["scan"]["files"][0]["path"] == "broken.wav"  # relative: the report is published
    round0, round1 = report["rounds"]
    assert round0["output_dir"] == "pseudo_round_0" and round0["added"] == 0
    assert round1["output_dir"] == "." and round1["added"] == round1["summary"]["added"] > 0
    per_class = round1["summary"]["per_class"]
    assert sum(entry["added"] for entry in per_class.values()) == round1["added"]
    assert all(entry["min_confidence"] >= 0.1 for entry in per_class.values() if entry["added"])
    assert round1["results"]["validation"]["ua"] == pytest.approx(results["validation"]["ua"])
    with open(out / "pseudo_labels_round_1.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["path"] for r in rows) == [f"street_{i}.wav" for i in range(6)]
    assert sum(r["added"] == "1" for r in rows) == round1["added"]

    # The last round is the output dir's model; round 0 is a finished run of its own, kept but never pushed.
    assert (out / "model.safetensors").is_file() and (out / "pseudo_round_0" / "model.safetensors").is_file()
    counts = json.loads((out / "pseudo_round_0" / "class_counts.json").read_text())
    assert json.loads((out / "class_counts.json").read_text()) == counts  # labeled counts: the same clips
    card = (out / "README.md").read_text()
    assert "## Pseudo-labels" in card and "| 0 (labeled only) | 0 |" in card
    assert "Pseudo-labels" not in (out / "pseudo_round_0" / "README.md").read_text()
    assert not any(f.startswith("pseudo_round_0/") for f in files_to_upload(out))


def test_a_pool_fold_round_without_clips_reproduces_round_zero(ravdess_tree, tmp_path):
    # Nothing reaches a threshold of 1: the last round trains on the same clips from the same initial weights and
    # seed as round 0, so it must land on the same model (a continued model would not).
    out = tmp_path / "run"
    train(_argv(ravdess_tree, out, pseudo_pool_fold=1, pseudo_threshold=1.0))
    report = json.loads((out / "pseudo_rounds.json").read_text())
    round0, round1 = report["rounds"]
    assert round1["added"] == 0 and round1["summary"]["pool"] == 16
    assert round1["results"] == round0["results"]
    assert "accuracy_pool" in round1["summary"]  # the held-back labels score the labeling model
    assert "fold 1's speakers" in (out / "README.md").read_text()


def test_a_probe_labels_the_pool_through_its_own_cache(ravdess_tree, tmp_path):
    # Pool tones at the frequencies of make_ravdess_tree's first six emotions: a probe that learned the tones must
    # label each pool clip with its emotion, the pool's clips going through the same encoder-feature cache.
    pool = tmp_path / "unlabeled"
    for i in range(6):
        write_tone(pool / f"street_{i}.wav", 0.6 + 0.1 * i, 240 + 90 * i, seed=900 + i)
    out = tmp_path / "run"
    train(_argv(ravdess_tree, out, unlabeled_dir=pool, pseudo_threshold=0.1, probe=True))
    with open(out / "pseudo_labels_round_1.csv") as handle:
        labels = {row["path"]: row["label"] for row in csv.DictReader(handle)}
    assert labels == {f"street_{i}.wav": emotion for i, emotion in enumerate(RAVDESS_EMOTIONS[:6])}
    assert (out / "probe_results.json").is_file() and (out / "pseudo_round_0" / "probe_results.json").is_file()
    assert json.loads((out / "pseudo_rounds.json").read_text())["rounds"][1]["added"] == 6

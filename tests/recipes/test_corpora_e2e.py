"""End-to-end: CREMA-D (21 and 6 labels) with the release's two bad files, a bring-your-own manifest, the user's
own split, and --strict. Tiny random models, generated audio."""

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.config import ModelArguments
from ser_hf.corpora.cremad import cremad_labels
from ser_hf.data.scan import BadAudioError
from ser_hf.models.encoders import build_model
from tests.conftest import TINY_ENCODER, make_ravdess_tree, pretrained_model_args, tiny_run_args, train, write_tone

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
EMOTIONS = {"ANG": 200, "DIS": 260, "FEA": 320, "HAP": 380, "NEU": 440, "SAD": 500}


# The config names the corpus and its folds; the run neither evaluates nor saves before the end.
FAST = {"corpus": None, "download": None, "n_folds": None, "fold": None, "gradient_accumulation_steps": 1,
        "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False, "early_stopping_patience": 0,
        "per_device_eval_batch_size": 8}


def _args(config, output_dir, data_dir=None, **overrides):
    return tiny_run_args(data_dir, output_dir, config=config, **{**FAST, **overrides})


def _finetune(config, output_dir, data_dir=None, **overrides):
    return train(_args(ROOT / "recipes/configs" / config, output_dir, data_dir, **overrides))


@pytest.fixture(scope="module")
def cremad_tree(tmp_path_factory):
    """9 actors of CREMA-D-named clips (IEO at three levels, DFA at XX), demographics, and actor 1076's two
    known-bad files from the public release: MTI_NEU_XX does not decode, MTI_SAD_XX is silent."""
    root = tmp_path_factory.mktemp("cremad")
    audio = root / "AudioWAV"
    actors = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1076]
    for actor in actors:
        for code, freq in EMOTIONS.items():
            levels = ["XX"] if code == "NEU" else ["LO", "MD", "HI"]
            for level in levels:
                write_tone(audio / f"{actor}_IEO_{code}_{level}.wav", 0.5, freq, seed=actor + freq)
            write_tone(audio / f"{actor}_DFA_{code}_XX.wav", 0.6, freq * 1.1, seed=actor + freq + 1)
    (audio / "1076_MTI_NEU_XX.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that ffmpeg cannot decode")
    sf.write(audio / "1076_MTI_SAD_XX.wav", np.zeros(8000, np.float32), 16_000, subtype="PCM_16")
    with open(root / "VideoDemographics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        for i, actor in enumerate(actors):
            writer.writerow([actor, 30, "Male" if i % 2 else "Female", "Caucasian", "Not Hispanic"])
    return audio


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-wav2vec2")
    model, fe = build_model(ModelArguments(model_name_or_path=None, model_type="wav2vec2",
                                           model_config_overrides=dict(TINY_ENCODER)), {0: "a", 1: "b"}, {"a": 0, "b": 1})
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("labels", [21, 6])
def test_run_sh_cremad_excludes_bad_files_and_reports_them(cremad_tree, tiny_pretrained, tmp_path, labels):
    output_dir = tmp_path / "out"
    args = _args(None, output_dir, cremad_tree, labels=labels, **pretrained_model_args(tiny_pretrained), n_folds=3)
    proc = subprocess.run(["bash", str(ROOT / "run.sh"), "cremad", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((output_dir / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(labels)] == list(cremad_labels(labels))

    report = json.loads((output_dir / "data_report.json").read_text())
    reasons = {Path(f["path"]).name: f["reason"] for f in report["files"]}
    assert reasons == {"1076_MTI_NEU_XX.wav": "unreadable", "1076_MTI_SAD_XX.wav": "silent"}
    predicted = set()
    for split in ("validation",):
        with open(output_dir / f"predictions_{split}.csv") as handle:
            predicted |= {Path(row["path"]).name for row in csv.DictReader(handle)}
    assert not predicted & set(reasons)
    card = (output_dir / "README.md").read_text()
    assert "license: odbl" in card and "unreadable" in card and "silent" in card
    assert "Clips per class and split" in card
    # 21 emotion x level labels are also scored on their 6 emotions (ser_hf/evaluation/emotion_collapse.py).
    results = json.loads((output_dir / "ser_results.json").read_text())["validation"]
    if labels == 21:
        with open(output_dir / "predictions_validation.csv") as handle:
            rows = list(csv.DictReader(handle))
        right = [row["true"].split("_")[0] == row["predicted"].split("_")[0] for row in rows]
        assert results["emotions"]["wa"] == pytest.approx(sum(right) / len(rows))
        assert results["emotions"]["label_names"] == list(cremad_labels(6))
        assert "## Scored as emotions" in card and "scored as emotions (validation)" in proc.stdout
    else:
        assert "emotions" not in results and "Scored as emotions" not in card


def test_strict_stops_before_training_naming_the_files(cremad_tree, tmp_path):
    with pytest.raises(BadAudioError, match="1076_MTI_NEU_XX"):
        _finetune("cremad6.yaml", tmp_path / "out", cremad_tree, labels=6, n_folds=3, strict=True)
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert (tmp_path / "out" / "data_report.json").exists()  # the report is there to read


def _manifest(tmp_path, with_speaker):
    tree = make_ravdess_tree(tmp_path / "audio", actors=6)
    names = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    rows = []
    for path in sorted(tree.rglob("*.wav")):
        parts = path.stem.split("-")
        row = {"path": path.relative_to(tmp_path).as_posix(), "label": names[int(parts[2]) - 1]}
        if with_speaker:
            row["speaker"] = f"spk{parts[6]}"
        rows.append(row)
    return rows


def _write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_bring_your_own_manifest_splits_by_speaker(tmp_path):
    manifest = _write_csv(tmp_path / "corpus.csv", _manifest(tmp_path, with_speaker=True))
    output_dir = tmp_path / "out"
    results = _finetune("custom.yaml", output_dir, tmp_path, manifest=manifest, n_folds=3)
    assert results["validation"]["num_examples"] == 16  # 2 of 6 speakers x 8 clips
    with open(output_dir / "predictions_validation.csv") as handle:
        speakers = {row["speaker"] for row in csv.DictReader(handle)}
    assert len(speakers) == 2
    card = (output_dir / "README.md").read_text()
    assert "Speaker-independent" in card and "license: other" in card


def test_manifest_without_speakers_warns_and_says_so_on_the_card(tmp_path, caplog):
    manifest = _write_csv(tmp_path / "corpus.csv", _manifest(tmp_path, with_speaker=False))
    output_dir = tmp_path / "out"
    _finetune("custom.yaml", output_dir, tmp_path, manifest=manifest, n_folds=4)
    assert any("leak" in record.getMessage() for record in caplog.records)
    assert "NOT speaker-independent" in (output_dir / "README.md").read_text()


def test_user_split_rejects_labels_unseen_in_training(tmp_path):
    rows = _manifest(tmp_path, with_speaker=True)
    train = _write_csv(tmp_path / "train.csv", [r for r in rows if r["speaker"] not in ("spk06",)
                                                and r["label"] != "surprised"])
    dev = _write_csv(tmp_path / "dev.csv", [r for r in rows if r["speaker"] == "spk06"])
    with pytest.raises(ValueError, match="surprised"):
        _finetune("custom.yaml", tmp_path / "out", train_manifest=train, validation_manifest=dev)


def test_user_split_trains_with_labels_from_training(tmp_path):
    rows = _manifest(tmp_path, with_speaker=True)
    train = _write_csv(tmp_path / "train.csv", [r for r in rows if r["speaker"] != "spk06"])
    dev = _write_csv(tmp_path / "dev.csv", [r for r in rows if r["speaker"] == "spk06" and r["label"] != "calm"])
    output_dir = tmp_path / "out"
    results = _finetune("custom.yaml", output_dir, tmp_path, train_manifest=train, validation_manifest=dev)
    config = json.loads((output_dir / "config.json").read_text())
    assert len(config["id2label"]) == 8 and "calm" in config["label2id"]  # from training, not validation
    assert results["validation"]["num_examples"] == 7


def test_hub_dataset_with_embedded_audio_reaches_the_same_pipeline(tmp_path):
    # A dataset whose audio lives inside it (as on the Hub, parquet bytes), saved locally: no network here.
    from datasets import Audio, ClassLabel, Dataset, Features, Value

    rows = _manifest(tmp_path, with_speaker=True)
    names = sorted({r["label"] for r in rows})
    features = Features({"audio": Audio(), "emotion": ClassLabel(names=names), "spk": Value("string")})
    dataset = Dataset.from_dict({"audio": [{"path": None, "bytes": (tmp_path / r["path"]).read_bytes()} for r in rows],
                                 "emotion": [names.index(r["label"]) for r in rows],
                                 "spk": [r["speaker"] for r in rows]}, features=features)
    dataset.save_to_disk(tmp_path / "hub_copy")
    output_dir = tmp_path / "out"
    results = _finetune("custom.yaml", output_dir, tmp_path / "data", corpus="hub", dataset_name=tmp_path / "hub_copy",
                        label_column="emotion", speaker_column="spk", n_folds=3)
    assert results["validation"]["num_examples"] == 16  # 2 of 6 speakers: folds of speakers, not random
    assert len(list((tmp_path / "data" / "hub_audio").glob("*.wav"))) == len(rows)
    config = json.loads((output_dir / "config.json").read_text())
    assert sorted(config["label2id"]) == names

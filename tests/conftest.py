"""Shared fixtures: generated audio in RAVDESS layout and tiny random models. Nothing is downloaded."""

import csv
import json
import os
import subprocess
import uuid

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import (
    AutoConfig,
    AutoModelForAudioClassification,
    Trainer,
    TrainingArguments,
    Wav2Vec2FeatureExtractor,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.pop("SER_HF_CACHE", None)  # a user's shared cache folder must not change where the tests look
os.environ.pop("SER_HF_COMMAND", None)  # set by `bash run.sh test`: the cards would show it, not the command tested

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.labels import RAVDESS_EMOTIONS

# A wav2vec2-shaped model small enough to train in seconds (the same keys work for hubert and wavlm).
TINY_ENCODER = {
    "conv_dim": [8, 8, 8],
    "conv_stride": [5, 4, 4],
    "conv_kernel": [10, 8, 8],
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 16,
    "mask_time_prob": 0.0,
    "layerdrop": 0.0,
}

# A Whisper just as small, 16 mel bins and a 1 s input: its encoder takes exactly 2 * max_source_positions
# log-mel frames of 10 ms (conv2 has stride 2), so 50 positions = 100 frames = a 1 s feature-extractor chunk.
TINY_WHISPER = {
    "d_model": 16,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "num_mel_bins": 16,
    "max_source_positions": 50,
    "max_target_positions": 16,
    "classifier_proj_size": 16,
}

# Every wav2vec2-family encoder at TINY_ENCODER's size (data2vec-audio's positional embedding is a stack of
# num_conv_pos_embeddings convolutions of conv_pos_kernel_size, not one wide convolution: two small ones here).
TINY_ENCODERS = {
    "wav2vec2": TINY_ENCODER,
    "hubert": TINY_ENCODER,
    "wavlm": TINY_ENCODER,
    "data2vec-audio": {**TINY_ENCODER, "num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5},
}


# The core of a tiny training run's command line: a random TINY_ENCODER wav2vec2 (no download), 4 speaker folds with
# fold 3 held out, 2 steps of 8 clips cropped to 1 s, on the CPU, no dataloader workers, no logging service.
TINY_RUN = {
    "model_name_or_path": "null",
    "model_type": "wav2vec2",
    "model_config_overrides": TINY_ENCODER,
    "freeze_feature_encoder": False,
    "download": False,
    "n_folds": 4,
    "fold": 3,
    "max_steps": 2,
    "per_device_train_batch_size": 8,
    "max_duration_seconds": 1.0,
    "dataloader_num_workers": 0,
    "report_to": "none",
    "use_cpu": True,
}


def tiny_run_args(data_dir, output_dir, corpus="ravdess", *, config=None, **overrides):
    """The argv of a tiny training run (`TINY_RUN`) on `corpus` in `data_dir`, written to `output_dir`.

    Each keyword sets `--key value`, replacing TINY_RUN's value or adding the field; None leaves the field out
    (as do `data_dir=None` and `corpus=None`: the config's or the dataclass's value applies). Values are written as
    the command line takes them: booleans as true/false, dicts as JSON, the rest with str(). `config`, a recipe
    YAML, comes first, as the positional argument of `ser-hf train`.
    """
    fields = {**TINY_RUN, "corpus": corpus, "data_dir": data_dir, "output_dir": output_dir, **overrides}
    argv = [str(config)] if config is not None else []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, dict):
            value = json.dumps(value)
        argv += [f"--{key}", str(value)]
    return argv


def pretrained_model_args(folder):
    """`tiny_run_args` overrides for a saved model folder in place of the random tiny wav2vec2: no model_type or
    model_config_overrides, and freeze_feature_encoder as the config sets it."""
    return {"model_name_or_path": str(folder), "model_type": None, "model_config_overrides": None,
            "freeze_feature_encoder": None}


def save_tiny_whisper(directory, seed=0):
    """A random tiny Whisper saved as openai/whisper-* are: the seq2seq model and its feature extractor (1 s chunk)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    WhisperForConditionalGeneration(WhisperConfig(**TINY_WHISPER)).save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=TINY_WHISPER["num_mel_bins"], chunk_length=1).save_pretrained(directory)
    return directory


def tone(seconds, sr=SAMPLE_RATE, channels=1, seed=0, freq=220.0, noise=0.02):
    """A noisy sine of amplitude 0.3 as a float64 array: (samples,) or, with channels > 1, the same wave in every
    channel, (samples, channels). `int(seconds * sr)` samples; the noise is seeded, `noise` its standard deviation."""
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + noise * np.random.default_rng(seed).standard_normal(len(t))
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_tone(path, seconds, freq, seed, sr=SAMPLE_RATE, channels=1):
    """A noisy tone (`tone`) as 16-bit PCM: distinct per emotion so a tiny model has something to learn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, sr, channels=channels, seed=seed, freq=freq).astype(np.float32), sr, subtype="PCM_16")
    return path


def touch(path, data=b""):
    """Write `data` (by default nothing: for loaders that must not decode audio) to `path`, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_ravdess_tree(root, actors=8, seconds=(0.4, 1.2)):
    """RAVDESS-named clips: one per emotion and actor (normal intensity, statement 01, repetition 01)."""
    rng = np.random.default_rng(0)
    for actor in range(1, actors + 1):
        for code, _ in enumerate(RAVDESS_EMOTIONS, start=1):
            name = f"03-01-{code:02d}-01-01-01-{actor:02d}.wav"
            write_tone(root / f"Actor_{actor:02d}" / name, rng.uniform(*seconds), 150 + 90 * code, seed=actor * 100 + code)
    return root


@pytest.fixture(scope="session")
def ravdess_tree(tmp_path_factory):
    """8 actors x 8 emotions of generated audio in the RAVDESS layout."""
    return make_ravdess_tree(tmp_path_factory.mktemp("ravdess"))


def tiny_trainer(output_dir, max_steps):
    """A plain Trainer on a tiny wav2vec2 and 8 random clips, saving a checkpoint every 2 steps."""
    torch.manual_seed(0)
    config = AutoConfig.for_model("wav2vec2", num_labels=3, **TINY_ENCODER)
    model = AutoModelForAudioClassification.from_config(config)
    generator = torch.Generator().manual_seed(0)
    data = [{"input_values": torch.randn(16_000, generator=generator), "labels": i % 3} for i in range(8)]
    args = TrainingArguments(str(output_dir), max_steps=max_steps, save_steps=2, save_strategy="steps",
                             per_device_train_batch_size=2, use_cpu=True, report_to="none",
                             logging_steps=100, disable_tqdm=True)
    return Trainer(model=model, args=args, train_dataset=data, processing_class=Wav2Vec2FeatureExtractor())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run of 4 steps saving every 2: checkpoint-2 and checkpoint-4, written once per module."""
    out = tmp_path_factory.mktemp("trained") / "run"
    tiny_trainer(out, max_steps=4).train()
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    return out


def emotion_tone(emotion, seconds, seed=0):
    """The generated "voice" of a demo emotion in these tests: `make_ravdess_tree`'s noisy tone for that emotion."""
    code = RAVDESS_EMOTIONS.index(emotion) + 1
    return tone(seconds, seed=seed, freq=150 + 90 * code).astype(np.float32)


def save_tone_model(directory, emotions=("sad", "angry"), steps=40, seed=0):
    """A tiny wav2vec2 with the 8 demo emotions, trained (a few seconds) to tell `emotions`' tones apart.

    A random model's labels follow nothing; this one's follow the input, so a test can generate a clip whose
    label is known and check that what a user sees is what the model says. 40 steps of AdamW at 1e-2 reach
    near-certain scores on 1 s tones (measured); one thread, because the tiny model's cost is thread overhead.
    """
    from ser_hf.config import ModelArguments
    from ser_hf.labels import label_maps
    from ser_hf.models.encoders import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        id2label, label2id = label_maps(RAVDESS_EMOTIONS)
        args = ModelArguments(model_name_or_path=None, model_type="wav2vec2", model_config_overrides=dict(TINY_ENCODER))
        model, feature_extractor = build_model(args, id2label, label2id)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        labels = torch.tensor([label2id[e] for e in emotions for _ in range(4)])
        model.train()
        for step in range(steps):
            clips = [emotion_tone(e, 1.0, seed=step * 100 + 10 * k + i) for k, e in enumerate(emotions) for i in range(4)]
            inputs = feature_extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            model(input_values=inputs["input_values"], labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        model.save_pretrained(directory)
        feature_extractor.save_pretrained(directory)
    finally:
        torch.set_num_threads(threads)
    return directory


@pytest.fixture(scope="session")
def tone_model(tmp_path_factory):
    """`save_tone_model`'s model (sad vs angry tones), trained once per session."""
    return save_tone_model(tmp_path_factory.mktemp("tone_model"))


@pytest.fixture(scope="module")
def classifier_model(tone_model):
    """The model folder that `classifier` loads: `tone_model`, unless a test module overrides this fixture."""
    return tone_model


@pytest.fixture(scope="module")
def classifier(classifier_model):
    """`load_classifier(classifier_model)` on the CPU, once per module."""
    from ser_hf.inference.classify import load_classifier

    return load_classifier(classifier_model, device="cpu")


# Files that predict reports instead of classifying, with the start of the reason its error row gives.
BAD_AUDIO = [
    ("notes.wav", "these are notes, not audio", "unreadable"),
    ("short.wav", np.zeros(100, dtype=np.float32), "too short"),
    ("nan.wav", np.full(SAMPLE_RATE, np.nan, dtype=np.float32), "non-finite"),
]


def write_bad_audio(path, content):
    """Write one BAD_AUDIO case: text where audio should be, or float samples as they are."""
    if isinstance(content, str):
        path.write_text(content)
    else:
        sf.write(path, content, SAMPLE_RATE, subtype="FLOAT")
    return path


def write_run_record(run, data_dir, rows):
    """The two files of a training output dir that name its validation clips: data_args.json and
    predictions_validation.csv, rows given as (path relative to data_dir, speaker, true, predicted, confidence)."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "data_args.json").write_text(json.dumps({"data_dir": str(data_dir)}))
    with (run / "predictions_validation.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "speaker", "true", "predicted", "confidence"])
        writer.writerows(rows)
    return run


def train(argv):
    """A training run as `ser-hf train ARGV` runs it, in this process: {split: metrics}; mistakes raise."""
    from ser_hf.config import parse_config
    from ser_hf.experiments.training_run import run_training
    from ser_hf.reporting.command import command_line

    argv = list(argv)
    shown = command_line("recipes/finetune.py", argv)
    config = argv.pop(0) if argv and not argv[0].startswith("-") else None
    return run_training(*parse_config(config, argv), command=shown)


def evaluate(argv):
    """`ser-hf evaluate ARGV` in this process: {split: metrics}; mistakes raise."""
    from ser_hf.commands.evaluate import build_parser
    from ser_hf.experiments.evaluate_model import evaluate_model, saved_run_data_args

    args, overrides = build_parser("ser-hf evaluate").parse_known_args(list(argv))
    return evaluate_model(args.model, saved_run_data_args(args.model, args.config, overrides), split=args.split,
                          output_dir=args.output_dir, batch_size=args.batch_size,
                          allow_seen_speakers=args.allow_seen_speakers)


# ---- the released layouts of the benchmark corpora, generated (none can be downloaded here) ----

IEMOCAP_CODES = {"neu": 0, "ang": 1, "sad": 2, "hap": 3, "exc": 3}  # exc is merged into happy


def make_iemocap_tree(root, per_code=1, nested=True, sessions=(1, 2, 3, 4, 5)):
    """`IEMOCAP_full_release/` (inside `root` when `nested`) as the release lays it out, with its quirks.

    Each session's two actors say `per_code` utterances of neu, ang, sad, hap and exc, in an improvised and a
    scripted dialog (the scripted names carry a take like 1b), plus one fru and one xxx utterance that the 4-class
    task leaves out. EmoEvaluation/ also holds annotator lines, a macOS `._` shadow file and the Categorical/ and
    Attribute/ folders, none of which are labels. The ratings are [V, A, D] on 1-5.

    Returns:
        The release folder.
    """
    release = root / "IEMOCAP_full_release" if nested else root
    for session in sessions:
        evaluation = release / f"Session{session}" / "dialog" / "EmoEvaluation"
        evaluation.mkdir(parents=True, exist_ok=True)
        for dialog_kind, dialog in (("impro", f"Ses0{session}F_impro01"), ("script", f"Ses0{session}M_script01_1b")):
            lines, turn = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""], 0
            codes = [*(code for code in IEMOCAP_CODES for _ in range(per_code)), "fru", "xxx"]
            for gender in ("F", "M"):
                for code in codes:
                    name = f"{dialog}_{gender}{turn:03d}"
                    turn += 1
                    tone = 150 + 60 * IEMOCAP_CODES.get(code, 4) + (20 if gender == "M" else 0)
                    write_tone(release / f"Session{session}" / "sentences" / "wav" / dialog / f"{name}.wav", 0.5,
                               tone, seed=session * 1000 + turn)
                    arousal = 1.5 + IEMOCAP_CODES.get(code, 1)
                    lines += [f"[{turn:.4f} - {turn + 0.5:.4f}]\t{name}\t{code}\t[2.5000, {arousal:.4f}, 3.0000]",
                              f"C-E1:\t{code};\t()", f"A-E2:\tval 3; act {int(arousal)}; dom  3;\t()", ""]
            (evaluation / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
            (evaluation / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 mac metadata")
        for other in ("Categorical", "Attribute"):
            (evaluation / other).mkdir(exist_ok=True)
            (evaluation / other / f"Ses0{session}F_impro01_e1_cat.txt").write_text(
                f"[0.1000 - 0.5000]\tSes0{session}F_impro01_F000\tsad\t[1.0000, 1.0000, 1.0000]\n")
    return release


MSP_CODES = ("N", "H", "S", "A", "U", "F", "D", "C")


def make_msp_podcast_tree(root, old_layout=False):
    """An MSP-Podcast release: Labels/labels_consensus.csv + Audios/ (or the older label/labels_concensus.json +
    Audio/), one segment per code per speaker in Train (speakers 1-3), Development (4), Test1 (5) and Test2 (6),
    plus O and X segments the 8-class task leaves out and one Train segment of SpkrID "Unknown".

    Returns:
        {split name as the release writes it: [file names]} of the kept segments.
    """
    audio = root / ("Audio" if old_layout else "Audios")
    records, kept = [], {}
    splits = {"Train": (1, 2, 3), "Development": (4,), "Test1": (5,), "Test2": (6,)}
    for split, speakers in splits.items():
        for speaker in speakers:
            for k, code in enumerate([*MSP_CODES, "O", "X"]):
                name = f"MSP-PODCAST_{speaker:04d}_{k:04d}.wav"
                write_tone(audio / name, 0.5, 150 + 40 * k, seed=speaker * 100 + k)
                records.append({"FileName": name, "EmoClass": code, "EmoAct": 1 + k % 7, "EmoVal": 4.0,
                                "EmoDom": 3.5, "SpkrID": str(speaker), "Gender": "Female" if speaker % 2 else "Male",
                                "Split_Set": split})
                if code in MSP_CODES:
                    kept.setdefault(split, []).append(name)
    write_tone(audio / "MSP-PODCAST_9999_0001.wav", 0.5, 300, seed=9)
    records.append({"FileName": "MSP-PODCAST_9999_0001.wav", "EmoClass": "N", "EmoAct": 4, "EmoVal": 4, "EmoDom": 4,
                    "SpkrID": "Unknown", "Gender": "Unknown", "Split_Set": "Train"})
    kept["Train"].append("MSP-PODCAST_9999_0001.wav")
    if old_layout:
        labels = root / "label" / "labels_concensus.json"
        labels.parent.mkdir(parents=True)
        labels.write_text(json.dumps({r["FileName"]: {k: v for k, v in r.items() if k != "FileName"} for r in records}))
    else:
        labels = root / "Labels" / "labels_consensus.csv"
        labels.parent.mkdir(parents=True)
        with labels.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    return kept


EMODB_LETTERS = "WLEAFTN"


def make_emodb_tree(root, speakers=("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"), texts=("a01", "b02")):
    """EmoDB's wav/ folder: one clip per speaker, text and emotion letter (03a01Fa.wav ...), plus the release's other
    folders' files that are not clips.

    Returns:
        The wav/ folder.
    """
    wav = root / "wav"
    for s, speaker in enumerate(speakers):
        for t, text in enumerate(texts):
            for e, letter in enumerate(EMODB_LETTERS):
                write_tone(wav / f"{speaker}{text}{letter}{'ab'[t]}.wav", 0.5, 150 + 50 * e, seed=100 * s + 10 * t + e)
    (root / "lablaut").mkdir(parents=True, exist_ok=True)
    (root / "lablaut" / "03a01Fa.lablaut").write_text("phone labels, not audio")
    (root / "wav" / "._03a01Fa.wav").write_bytes(b"\x00\x05\x16\x07")
    return wav


# EmoBox's label_map.json of the generated corpus: its raw codes -> EmoBox's labels; a code whose case differs from the
# jsonl lines' (Neutral / neutral) as in some of EmoBox's maps.
EMOBOX_CODES = {"ang": "Angry", "Neutral": "Neutral", "sad": "Sad"}


def make_emobox_tree(root, dataset="mycorpus", folds=(("sp1", "sp2", "sp3"), ("sp4", "sp5", "sp6")), per_code=2,
                     overlap=False):
    """An EmoBox checkout's layout for one corpus: `root/downloads/<dataset>/<speaker>/*.wav` and
    `root/data/<dataset>/` with label_map.json, data.seg.wrd.stm (speakers) and fold_<n>/<dataset>_{train,test}_fold_<n>.jsonl,
    each fold testing on its speakers and training on the others. Also: one PAVOQUE-style line (a start_time /
    end_time segment of a 3 s recording, speaker sp6, in every fold's files where sp6 is), and an old-format
    `<dataset>_train_fold1.jsonl` in fold_1 that is not JSON (it must not be read). `overlap`: fold_1's test file
    also holds one clip of a training speaker (as EmoBox's random folds do).

    Returns:
        (EmoBox root = --data_dir, data/<dataset> = --emobox_dir, {key: (speaker, code)} of every utterance)
    """
    utterances, lines, stm = {}, {}, []
    speakers = [s for fold in folds for s in fold]
    for s, speaker in enumerate(speakers):
        for c, code in enumerate(EMOBOX_CODES):
            for i in range(per_code):
                key = f"{speaker}_{code.lower()}_{i}"
                wav = f"downloads/{dataset}/{speaker}/{key}.wav"
                write_tone(root / wav, 0.5, 150 + 80 * c, seed=100 * s + 10 * c + i)
                utterances[key] = (speaker, code)
                lines[key] = {"key": key, "dataset": dataset, "wav": wav, "type": "raw", "sample_rate": SAMPLE_RATE,
                              "length": 0.5, "task": "category", "emo": code.lower(), "channel": 1}
                stm.append(f"{key} 1 {speaker} 0.00 0.50 <o,f0,female> words")
    long_wav = f"downloads/{dataset}/long/recording.wav"
    write_tone(root / long_wav, 3.0, 230, seed=7)
    lines["recording_seg"] = {"key": "recording_seg", "wav": long_wav, "emo": "ang", "start_time": 0.5, "end_time": 1.5,
                              "sample_rate": SAMPLE_RATE, "channel": 1}
    utterances["recording_seg"] = (speakers[-1], "ang")
    stm.append(f"recording_seg 1 {speakers[-1]} 0.50 1.50 <o,f0,female> words")
    data = root / "data" / dataset
    data.mkdir(parents=True, exist_ok=True)
    (data / "label_map.json").write_text(json.dumps(EMOBOX_CODES))
    (data / "data.seg.wrd.stm").write_text("\n".join(stm) + "\n")
    for n, test_speakers in enumerate(folds, start=1):
        fold = data / f"fold_{n}"
        fold.mkdir(exist_ok=True)
        test = [k for k, (speaker, _) in utterances.items() if speaker in test_speakers]
        train = [k for k in utterances if k not in test]
        if overlap and n == 1:
            test.append(train.pop(0))
        for split, keys in (("train", train), ("test", test)):
            (fold / f"{dataset}_{split}_fold_{n}.jsonl").write_text("".join(json.dumps(lines[k]) + "\n" for k in keys))
    (data / "fold_1" / f"{dataset}_train_fold1.jsonl").write_text("the old format: not read\n")
    return root, data, utterances


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs: a real disk that fills up. Mounting needs root (or a user namespace)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}); the injected-ENOSPC tests cover it")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# A private PostgreSQL server for the shared-study tests (tests/postgres.py): `postgres_server`, `postgres_url`.
from tests.postgres import postgres_server, postgres_url  # noqa: E402, F401

"""Recipe arguments: one YAML file plus command-line overrides of any field (the command line wins).

Three dataclasses, parsed together by `HfArgumentParser` as in transformers' example scripts:
`ModelArguments`, `DataArguments` and `SERTrainingArguments` (TrainingArguments plus what SER adds).
"""

import dataclasses
import json
import logging
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments

from ser_hf.console import did_you_mean, read_overrides
from ser_hf.errors import UsageError
from ser_hf.storage import write_text_atomic

logger = logging.getLogger(__name__)

# Choice fields are Literal types: HfArgumentParser turns them into argparse choices, and `_check_choices` holds
# YAML values to the same list, so a typo fails before any data work, naming the valid values.
# (Tests keep these lists equal to the registries they name: ser_hf.corpora, ser_hf.data.augment.PRESETS,
# ser_hf.training.imbalance.WEIGHTING_SCHEMES.)
Corpus = Literal["ravdess", "demo", "cremad", "iemocap", "msp_podcast", "emodb", "emobox", "manifest",
                 "audiofolder", "hub"]
HeldOutSplit = Literal["validation", "test"]
PaddingMode = Literal["max_length", "longest", "crop"]
AugmentationPreset = Literal["none", "seed21", "light"]
ClassWeighting = Literal["none", "inverse", "sqrt_inverse"]
EvalMetric = Literal["loss", "ua", "wa", "macro_f1", "ccc"]
EncoderType = Literal["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper"]
FoldScheme = Literal["ser_hf", "emobox"]
Task = Literal["emotion", "multitask", "dimensional"]
DimensionalLoss = Literal["ccc", "mse"]
# The scores of an emotion classifier: a --task dimensional run cannot select or schedule on them.
_CLASS_METRICS = ("ua", "wa", "macro_f1")


def _check_choices(instance):
    """Raise UsageError when a Literal-typed field holds a value outside its choices (e.g. from a YAML file)."""
    for name, hint in typing.get_type_hints(type(instance)).items():
        literals = [a for a in typing.get_args(hint) if typing.get_origin(a) is Literal]
        if typing.get_origin(hint) is Literal:
            literals = [hint]
        if not literals:
            continue
        choices = typing.get_args(literals[0])
        value = getattr(instance, name)
        if value not in choices and not (value is None and type(None) in typing.get_args(hint)):
            raise UsageError(f"{name}={value!r} is not a valid choice; choose one of: {', '.join(map(str, choices))}")


def _json_dict(value):
    # A dict arrives as a dict from YAML and as a JSON string from the command line.
    if value is None or isinstance(value, dict):
        return dict(value or {})
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON object, got {value!r}: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {value!r}")
    return parsed


def parse_dimension_range(value):
    """(low, high) of `--dimension_range`: "1,5" from the command line, [1, 5] from a YAML file.

    Raises:
        UsageError: not two numbers, or low >= high.
    """
    parts = list(value) if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        low, high = (float(str(part).strip()) for part in parts)
    except ValueError:
        raise UsageError(f"--dimension_range {value!r}: give the ratings' scale as LOW,HIGH, e.g. 1,5 "
                         "(IEMOCAP-style) or 1,7 (MSP-Podcast-style)") from None
    if not low < high:
        raise UsageError(f"--dimension_range {value!r}: LOW must be below HIGH, e.g. 1,5")
    return low, high


@dataclass
class ModelArguments:
    """Which encoder to fine-tune and what to freeze."""

    model_name_or_path: str | None = field(
        default="facebook/wav2vec2-base",
        metadata={"help": "Hub id or local folder of a pretrained audio encoder. null with model_type: random init."},
    )
    model_type: EncoderType | None = field(
        default=None,
        metadata={"help": "Build a randomly initialised model of this type (wav2vec2, hubert, wavlm, whisper, ...) "
                  "from model_config_overrides instead of loading weights. Used by the offline demo and the tests."},
    )
    model_config_overrides: dict | str | None = field(
        default=None,
        metadata={"help": "JSON object of config fields to override, e.g. dropouts, layerdrop, SpecAugment "
                  "(mask_time_prob, mask_feature_prob), or the whole architecture for a random init."},
    )
    freeze_feature_encoder: bool = field(
        default=True, metadata={"help": "Freeze the convolutional feature encoder (standard for wav2vec2 fine-tuning; "
                                "Whisper: conv1, conv2 and the positions)."}
    )
    freeze_encoder_layers: int = field(
        default=0, metadata={"help": "Freeze the bottom N transformer layers (and the feature projection)."}
    )
    freeze_encoder: bool = field(
        default=False, metadata={"help": "Freeze the whole encoder: a linear probe that trains only the head."}
    )
    use_weighted_layer_sum: bool = field(
        default=False, metadata={"help": "Pool a learned weighted sum of all hidden layers (SUPERB style)."}
    )
    init_head_from: str | None = field(
        default=None,
        metadata={"help": "A `--probe true` output dir: fine-tuning starts from its trained head (layer weights, "
                  "projector, classifier) instead of a random one (linear probing, then fine-tuning: LP-FT). Turns "
                  "use_weighted_layer_sum on; the encoder architecture and size and the label set must match."},
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the pretrained model."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model code from the Hub to run. Off unless you trust the repo."}
    )

    def __post_init__(self):
        _check_choices(self)
        self.model_config_overrides = _json_dict(self.model_config_overrides)
        # YAML's null arrives as None; on the command line it is the word.
        if str(self.model_name_or_path).lower() in ("null", "none", ""):
            self.model_name_or_path = None
        if self.model_name_or_path is None and self.model_type is None:
            raise UsageError("set model_name_or_path (pretrained) or model_type (random init from a config)")
        if self.model_name_or_path is not None and self.model_type is not None:
            raise UsageError(f"--model_type {self.model_type} builds a randomly initialised encoder, but "
                             f"--model_name_or_path {self.model_name_or_path} loads a pretrained one: pass "
                             "--model_name_or_path null for the random encoder, or drop --model_type")


@dataclass
class DataArguments:
    """Which corpus, which speaker fold, and how clips are cut and padded."""

    corpus: Corpus = field(
        default="ravdess",
        metadata={"help": "'manifest': a CSV/TSV/JSONL with path, label and optional "
                  "speaker columns (--manifest); 'audiofolder': a folder with metadata.csv (file_name, label, "
                  "optional speaker); 'hub': a Hub dataset (--dataset_name) with audio and label columns."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Corpus folder. Default: the corpus's own (data/ravdess, data/demo), the manifest's folder, "
                  "or data/hub/<dataset>; CREMA-D and audiofolder need it. RAVDESS is downloaded and extracted here "
                  "when missing; the demo corpus is generated here; CREMA-D: a git-lfs clone (or its AudioWAV folder)."},
    )
    labels: str | None = field(
        default=None,
        metadata={"help": "Label set, for corpora that have several (CREMA-D: 21 = emotion x intensity, the default, "
                  "or 6 = emotion; RAVDESS and the demo: 8 = emotion, the default, or 15 = emotion x intensity). "
                  "Refused for other corpora."},
    )
    manifest: str | None = field(default=None, metadata={"help": "corpus=manifest: the manifest file."})
    emobox_dir: str | None = field(
        default=None, metadata={"help": "corpus=emobox: EmoBox's data/<dataset> folder (its fold files and label map)."}
    )
    train_manifest: str | None = field(
        default=None, metadata={"help": "Your own split: train CSV (path, label[, speaker]); labels come from it."}
    )
    validation_manifest: str | None = field(default=None, metadata={"help": "Your own split: validation CSV."})
    test_manifest: str | None = field(default=None, metadata={"help": "Your own split: optional test CSV."})
    dataset_name: str | None = field(default=None, metadata={"help": "corpus=hub: the dataset id (or a local folder)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "corpus=hub: the dataset's config."})
    dataset_split: str = field(default="train", metadata={"help": "corpus=hub: the split holding the corpus."})
    path_column: str = field(
        default="path", metadata={"help": "corpus=manifest: the column holding each clip's audio path."}
    )
    audio_column: str = field(default="audio", metadata={"help": "corpus=hub: the audio column."})
    label_column: str = field(default="label", metadata={"help": "corpus=manifest or hub: the label column."})
    speaker_column: str | None = field(
        default=None,
        metadata={"help": "corpus=manifest or hub: the speaker column (manifest default: 'speaker' when the file "
                  "has one; without speakers the split is stratified and speakers may leak)."},
    )
    dimension_range: str | None = field(
        default=None,
        metadata={"help": "--task dimensional with a manifest: the scale of its arousal, valence and dominance "
                  "columns as LOW,HIGH (e.g. 1,5 or 1,7); each value is scaled to [0, 1] as (x - LOW) / (HIGH - LOW). "
                  "null: the values are already in [0, 1]. Corpora with ratings of their own (IEMOCAP 1-5, "
                  "MSP-Podcast 1-7) know their scale."},
    )
    download: bool = field(default=True, metadata={"help": "Download the corpus when data_dir does not hold it."})
    n_folds: int = field(default=6, metadata={"help": "Speaker folds (RAVDESS: 6 folds of 4 actors)."})
    fold: int = field(default=0, metadata={"help": "Fold held out for evaluation (validation), 0-based."})
    test_fold: int | None = field(
        default=None, metadata={"help": "Optional second fold held out as a test split, never used for selection."}
    )
    fold_seed: int | None = field(
        default=None, metadata={"help": "Shuffle speakers before folding; null keeps the documented fixed folds."}
    )
    fold_scheme: FoldScheme = field(
        default="ser_hf",
        metadata={"help": "Which speaker folds: 'ser_hf', our gender-balanced folds; 'emobox', the folds EmoBox "
                  "published (github.com/emo-box/EmoBox; RAVDESS only, 6 folds, fold k = its fold_<k+1>), so a "
                  "number can stand beside EmoBox's table."},
    )
    held_out_split: HeldOutSplit | None = field(
        default=None,
        metadata={"help": "What the held-out fold (--fold) is: 'validation', it selects the checkpoint and is "
                  "reported (add --test_fold for a number no selection saw); 'test', it is reported and takes no "
                  "part in selection, and the next fold (fold + 1 mod n_folds) is the validation split, out of "
                  "training. null: the corpus's own protocol (IEMOCAP: test, leave one session out; the others: "
                  "validation)."},
    )
    max_duration_seconds: float = field(
        default=5.0, metadata={"help": "Training clips are randomly cropped to at most this many seconds."}
    )
    eval_max_duration_seconds: float | None = field(
        default=None,
        metadata={"help": "Fixed crop (from the start) for evaluation. null: the whole clip, exactly what "
                  "pipeline('audio-classification') sees, so the reported metrics are the pipeline's."},
    )
    padding: PaddingMode = field(
        default="max_length",
        metadata={"help": "Training batches: 'max_length' pads every clip to max_duration_seconds, "
                  "'longest' to the longest clip in the batch, 'crop' cuts every clip to a random window as long "
                  "as the batch's shortest clip (no padding at all: for models without an attention mask, "
                  "which otherwise learn from zeros that the pipeline never gives them). Whisper pads every clip "
                  "to its fixed 30 s input whatever the mode, and refuses 'crop'."},
    )
    augmentation: AugmentationPreset = field(
        default="none",
        metadata={"help": "Training augmentation preset (ser_hf/data/augment.py): none, seed21 (noise, pitch shift, "
                  "time stretch, each p=0.5), light. Applied on the fly, seeded, never to evaluation data."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate training data (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate evaluation data (debugging)."})
    demo_seed: int = field(default=0, metadata={"help": "Seed of the synthetic demo corpus."})
    max_audio_seconds: float | None = field(
        default=30.0, metadata={"help": "The audio scan excludes longer files as suspicious (null: no limit)."}
    )
    strict: bool = field(
        default=False, metadata={"help": "Stop before training when the audio scan finds any bad file."}
    )
    scan_workers: int | None = field(
        default=None, metadata={"help": "Processes for the audio scan and the decoding to 16 kHz (default: all cores)."}
    )
    audio_cache: bool = field(
        default=True,
        metadata={"help": "Decode and resample every clip once into .ser_hf_audio_cache (see cache_dir; 16 kHz float32, "
                  "about 230 MB per hour of audio) and read those arrays every epoch; false decodes every epoch."},
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Folder for the scan, audio and probe caches, a subfolder per corpus (default: "
                  "$SER_HF_CACHE, else beside the corpus)."},
    )
    unlabeled_dir: str | None = field(
        default=None,
        metadata={"help": "Pseudo-labels: a folder of unlabeled audio (searched recursively). The trained model "
                  "labels it (after the same audio scan), clips scoring at least pseudo_threshold join the training "
                  "set, and a fresh model trains again (ser_hf/experiments/pseudo_rounds.py). Refused when a file is a "
                  "corpus file (same path or bytes) or, by its corpus-style name, an evaluation speaker's; it must "
                  "lie outside data_dir."},
    )
    pseudo_threshold: float = field(
        default=0.9, metadata={"help": "Pseudo-labels: a clip joins training when its top class score is at least this."}
    )
    pseudo_rounds: int = field(
        default=1, metadata={"help": "Pseudo-labels: how many times to relabel the pool and train a fresh model."}
    )
    pseudo_pool_fold: int | None = field(
        default=None,
        metadata={"help": "Measure pseudo-labelling on a labeled corpus: this speaker fold leaves labeled training "
                  "and its audio, labels unused, is the unlabeled pool (instead of unlabeled_dir). Its held-back "
                  "labels only score the pseudo-labels in the report. Not the validation or test fold."},
    )

    def __post_init__(self):
        _check_choices(self)
        if self.corpus == "manifest" and not (self.manifest or self.train_manifest):
            raise UsageError("corpus=manifest needs --manifest FILE or --train_manifest/--validation_manifest")
        if self.corpus == "hub" and not self.dataset_name:
            raise UsageError("corpus=hub needs --dataset_name")
        if bool(self.train_manifest) != bool(self.validation_manifest):
            raise UsageError("give both --train_manifest and --validation_manifest (and optionally --test_manifest)")
        if self.unlabeled_dir and self.pseudo_pool_fold is not None:
            raise UsageError("choose one unlabeled pool: --unlabeled_dir or --pseudo_pool_fold, not both")
        if not 0 < self.pseudo_threshold <= 1:
            raise UsageError(f"--pseudo_threshold {self.pseudo_threshold}: a top class score, in (0, 1]")
        if self.pseudo_rounds < 1:
            raise UsageError(f"--pseudo_rounds {self.pseudo_rounds}: at least 1 (drop --unlabeled_dir for none)")
        if self.dimension_range is not None and str(self.dimension_range).strip().lower() in ("", "null", "none"):
            self.dimension_range = None
        if self.dimension_range is not None:  # one spelling, whatever was typed: "1,5"
            self.dimension_range = "{:g},{:g}".format(*parse_dimension_range(self.dimension_range))


def _fast_half_precision(use_cpu):
    """(bf16, fp16): the half precision this machine computes fast, for `auto_mixed_precision`."""
    accelerator = None if use_cpu else torch.accelerator.current_accelerator(check_available=True)
    if accelerator is not None and accelerator.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return bf16, not bf16  # pre-Ampere GPUs: fp16, which the Trainer pairs with a loss scaler
    if accelerator is not None:
        return False, False  # MPS, XPU, ...: untested here, left to --bf16 / --fp16
    cpu = getattr(torch, "cpu", None)  # private checks, hence the guard: a torch without them gets fp32
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks), False


@dataclass
class SERTrainingArguments(TrainingArguments):
    """TrainingArguments plus early stopping and the SER learning-rate schedules.

    `lr_scheduler_type` takes every Trainer schedule; two get SER defaults in `SERTrainer.create_scheduler`:
    `warmup_stable_decay` (warmup `warmup_steps`, then constant, then linear decay over the last
    `lr_scheduler_kwargs.decay_ratio` = 0.3 of training) and `reduce_lr_on_plateau` (on the evaluation loss).
    """

    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improvement. 0 or null: no early stop."}
    )
    early_stopping_threshold: float = field(
        default=0.0, metadata={"help": "Minimum improvement of metric_for_best_model that resets the patience."}
    )
    plateau_metric: EvalMetric = field(
        default="loss", metadata={"help": "reduce_lr_on_plateau watches this evaluation metric (without 'eval_')."}
    )
    plateau_factor: float = field(default=0.5, metadata={"help": "reduce_lr_on_plateau multiplies the LR by this."})
    plateau_patience: int = field(default=2, metadata={"help": "reduce_lr_on_plateau waits this many evaluations."})
    class_weighting: ClassWeighting = field(
        default="none",
        metadata={"help": "Weighted cross-entropy from the training class counts: none, inverse or sqrt_inverse."},
    )
    task: Task = field(
        default="emotion",
        metadata={"help": "'multitask': an intensity head beside the emotion head on the same pooled representation, "
                  "trained with loss = CE(emotion) + intensity_loss_weight * CE(intensity) (RAVDESS/demo: normal/"
                  "strong; CREMA-D --labels 6: low/medium/high; a manifest's intensity column). Clips without an "
                  "intensity (CREMA-D XX, neutral) are masked out of that loss. The saved model stays a plain "
                  "emotion classifier for pipeline(); the intensity head is saved beside it "
                  "(ser_hf/training/multitask.py). 'dimensional': regression of arousal, dominance and valence, each "
                  "scaled to [0, 1] (IEMOCAP, MSP-Podcast, or a manifest with arousal/valence/dominance columns and "
                  "--dimension_range), scored by CCC; the checkpoint is an audio classifier with "
                  "problem_type regression, whose pipeline() scores are the three values (docs/dimensional.md)."},
    )
    dimensional_loss: DimensionalLoss = field(
        default="ccc",
        metadata={"help": "--task dimensional: 'ccc', 1 - CCC (concordance correlation coefficient over the batch) "
                  "averaged over the dimensions; 'mse', the mean squared error. CCC needs 2 clips: a batch of one "
                  "clip falls back to MSE."},
    )
    intensity_loss_weight: float = field(
        default=0.5,
        metadata={"help": "--task multitask: weight of the intensity loss. 0.5 keeps emotion the main task (the "
                  "intensity CE of 2-3 classes starts near ln 2-ln 3, the emotion CE near ln 6-ln 8)."},
    )
    balanced_sampling: bool = field(
        default=False,
        metadata={"help": "Draw training clips with probability 1 / (clips of their class), with replacement, so "
                  "every class is seen equally often per epoch (an alternative to class_weighting)."},
    )
    length_grouping_batches: int = field(
        default=0,
        metadata={"help": "Batches of similar length: clips are shuffled, sorted by length inside random windows of "
                  "this many batches, and the batches shuffled (ser_hf/training/sampling.py), so padding or 'crop' "
                  "wastes little while classes stay mixed. 0: plain random batches."},
    )
    auto_mixed_precision: bool = field(
        default=True,
        metadata={"help": "Unless --bf16 or --fp16 is given: bf16 autocast where the hardware computes bf16 fast "
                  "(CUDA compute capability 8+, CPUs with AVX512-BF16 or AMX), fp16 with loss scaling on older "
                  "CUDA GPUs. Evaluation always runs in fp32, so its scores are the pipeline's. false: fp32."},
    )
    probe: bool = field(
        default=False,
        metadata={"help": "Linear probe: freeze the whole encoder, run each clip through it once (whole, as the "
                  "pipeline does) and cache the time mean of every hidden state beside the corpus "
                  "(.ser_hf_probe_cache/, reused by every run and fold with this encoder); then train only the head "
                  "(layer weights, projector, classifier) on those means, in seconds (ser_hf/training/probe.py). "
                  "The output is an ordinary checkpoint, evaluated as the pipeline runs it. The Trainer's schedule "
                  "and batch fields do not apply: see the probe_* fields."},
    )
    probe_epochs: int = field(default=300, metadata={"help": "--probe: most epochs of head training."})
    probe_learning_rate: float = field(
        default=1e-3, metadata={"help": "--probe: AdamW learning rate of the head (constant; weight_decay applies)."}
    )
    probe_batch_size: int = field(default=32, metadata={"help": "--probe: clips per head-training step."})
    probe_patience: int | None = field(
        default=50,
        metadata={"help": "--probe: stop after this many epochs without a better metric_for_best_model on the "
                  "validation split (which also picks the epoch kept). 0 or null: all probe_epochs."},
    )
    probe_layer_analysis: bool = field(
        default=True,
        metadata={"help": "--probe: also train one probe per hidden state alone and report each one's UA "
                  "(probe_layers.md/.json/.png: which layer carries emotion); seconds from the cache."},
    )
    diagnostics_collapse_evaluations: int = field(
        default=2, metadata={"help": "Warn when the model predicts one class for most of the evaluation set this "
                             "many evaluations in a row (ser_hf/training/diagnostics.py)."}
    )
    diagnostics_stall_evaluations: int = field(
        default=3, metadata={"help": "Warn when metric_for_best_model has not moved for this many evaluations."}
    )
    temperature_scaling: bool = field(
        default=False,
        metadata={"help": "After training, fit one temperature T on the validation clips' logits (minimum NLL) and "
                  "divide the saved classifier layer by it, so pipeline() scores are softmax(logits / T): better "
                  "calibrated, same labels, same UA (ser_hf/experiments/temperature_scaling.py). The card reports "
                  "ECE before and after; config.json records `calibration_temperature`."},
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the newest intact checkpoint (= resume_from_checkpoint auto)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow a new run into an output_dir that holds a finished one."}
    )
    # Early-stopping patience must survive a resume (the Trainer's default forgets it).
    restore_callback_states_from_checkpoint: bool = field(
        default=True, metadata={"help": "Restore callback state (early-stopping patience) when resuming."}
    )

    def __post_init__(self):
        _check_choices(self)
        if self.resume and self.resume_from_checkpoint is None:
            self.resume_from_checkpoint = "auto"
        if self.hub_token:
            # The Trainer pickles these arguments into training_args.bin in every checkpoint and the output dir:
            # the token leaves the field for an attribute that pickling skips (`__getstate__`), and only our own
            # push reads it (`push_token`). Nothing global changes: no environment variable is written.
            self._push_token, self.hub_token = self.hub_token, None
            logger.warning("--hub_token is used for the final push only and never written to disk; prefer "
                           "`hf auth login` or HF_TOKEN (a token on the command line is visible to other users in "
                           "the process list)")
        if self.task == "multitask" and self.probe:
            raise UsageError("--probe trains the emotion head alone on cached features: drop --task multitask")
        if self.task == "dimensional":
            self._check_dimensional()
        elif self.plateau_metric == "ccc":
            raise UsageError("--plateau_metric ccc scores --task dimensional; an emotion classifier has ua, wa, "
                             "macro_f1 or loss")
        if self.intensity_loss_weight < 0:
            raise UsageError(f"--intensity_loss_weight {self.intensity_loss_weight}: a loss weight, at least 0")
        if self.length_grouping_batches and self.balanced_sampling:
            raise UsageError("choose one of --length_grouping_batches and --balanced_sampling: both pick the batches")
        if self.auto_mixed_precision and not (self.bf16 or self.fp16):
            self.bf16, self.fp16 = _fast_half_precision(self.use_cpu)
            # transformers takes CPU bf16 only with use_cpu; without an accelerator the run is on the CPU anyway.
            if self.bf16 and torch.accelerator.current_accelerator(check_available=True) is None:
                self.use_cpu = True
        super().__post_init__()
        self._fit_dataloader_to_machine()

    def _check_dimensional(self):
        """Refuse what only an emotion classifier has (classes, their scores), and select on CCC, not UA."""
        for flag, on in (("--probe", self.probe), ("--temperature_scaling", self.temperature_scaling),
                         ("--balanced_sampling", self.balanced_sampling),
                         ("--class_weighting", self.class_weighting != "none")):
            if on:
                raise UsageError(f"{flag} is for emotion classes; --task dimensional regresses arousal, dominance and "
                                 f"valence: drop {flag}")
        if self.plateau_metric in _CLASS_METRICS:
            raise UsageError(f"--plateau_metric {self.plateau_metric} scores classes: with --task dimensional use ccc "
                             "or loss")
        metric = (self.metric_for_best_model or "").removeprefix("eval_")
        if metric in _CLASS_METRICS or metric.startswith("recall_"):
            logger.info("--task dimensional: metric_for_best_model %s -> ccc (mean CCC over the dimensions; %s "
                        "scores emotion classes)", metric, metric)
            self.metric_for_best_model = "ccc"
        elif (metric == "mse" or metric.startswith("mse_")) and self.greater_is_better is None:
            self.greater_is_better = False  # the Trainer would take any name not ending in "loss" as higher-is-better

    def _fit_dataloader_to_machine(self):
        # More decoding workers than cores only adds contention (and torch warns about it at every epoch);
        # pinned memory needs a GPU (without one torch warns at every evaluation and pins nothing).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if self.dataloader_num_workers > cores:
            logger.info("dataloader_num_workers %d -> %d: the cores this process may use", self.dataloader_num_workers,
                        cores)
            self.dataloader_num_workers = cores
        if self.dataloader_pin_memory and (self.use_cpu or not torch.cuda.is_available()):
            self.dataloader_pin_memory = False
        # Workers that live through the run: no process start-up at every evaluation and epoch.
        if self.dataloader_num_workers > 0:
            self.dataloader_persistent_workers = True

    @property
    def push_token(self):
        """The --hub_token given on the command line, or None (huggingface_hub then uses HF_TOKEN or the login)."""
        return getattr(self, "_push_token", None)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_push_token", None)
        return state


def config_fields():
    """Names of every field a YAML config may set."""
    return {f.name for cls in (ModelArguments, DataArguments, SERTrainingArguments) for f in dataclasses.fields(cls)}


class _Parser(HfArgumentParser):
    """HfArgumentParser whose errors are one line (a UsageError) instead of the 150-line usage and exit."""

    def error(self, message):
        raise UsageError(message)


# Keys a recipe YAML may hold besides the fields: the hyperparameter search's spaces (ser_hf/experiments/search_space.py,
# `ser-hf search`). Training and every other command ignore them, so one YAML serves both.
SEARCH_KEYS = ("search_space", "probe_search_space")


def read_config(config_path):
    """The values of a recipe YAML, every key checked against the fields of the three argument dataclasses.

    Raises:
        UsageError: the file is missing, is not a YAML mapping, or names an unknown field.
    """
    path = Path(config_path)
    if not path.is_file():
        raise UsageError(f"config file {config_path} not found (the recipes' configs are in recipes/configs/)")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{config_path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UsageError(f"{config_path} must be a mapping of field: value")
    known = config_fields()
    for key in values:
        if key not in known and key not in SEARCH_KEYS:
            raise UsageError(f"{config_path}: unknown field {key!r}{did_you_mean(key, known)}; "
                             "`ser-hf train --help` lists every field")
    return values


def check_folds(data_args, single_fold=True):
    """Raise UsageError for a fold outside 0..n_folds-1 or a test fold equal to the validation fold.

    Args:
        data_args: `DataArguments`.
        single_fold: the run holds out `fold`; False where every fold is held out in turn (cross-validation,
            the baseline over several folds) and the config's own `fold` plays no part.
    """
    names = ("fold", "test_fold") if single_fold else ("test_fold",)
    for name in names:
        value = getattr(data_args, name)
        if value is not None and not 0 <= value < data_args.n_folds:
            raise UsageError(f"--{name} {value} is out of range: folds are 0..{data_args.n_folds - 1} "
                             f"(n_folds {data_args.n_folds})")
    if single_fold and data_args.test_fold is not None and data_args.test_fold == data_args.fold:
        raise UsageError(f"--test_fold and --fold are both {data_args.fold}: the test fold must be another fold")
    pool = data_args.pseudo_pool_fold
    if pool is not None:  # its speakers are the unlabeled pool: never evaluated, never labeled training data
        if not 0 <= pool < data_args.n_folds:
            raise UsageError(f"--pseudo_pool_fold {pool} is out of range: folds are 0..{data_args.n_folds - 1}")
        held_out = {"--test_fold": data_args.test_fold, **({"--fold": data_args.fold} if single_fold else {})}
        for name, value in held_out.items():
            if value == pool:
                raise UsageError(f"--pseudo_pool_fold and {name} are both {pool}: the unlabeled pool must be "
                                 "another fold than the evaluated ones")


def parse_config(config_path=None, argv=None, single_fold=True, prog=None):
    """Read a YAML config, apply command-line overrides, and build the three argument dataclasses.

    Args:
        config_path: YAML file whose keys are field names of the three dataclasses, or None.
        argv: command-line arguments (`--field value`), which win over the YAML.
        single_fold: see `check_folds`.
        prog: the command a mistake's message points at for `--help` (default `python recipes/finetune.py`).

    Returns:
        (ModelArguments, DataArguments, SERTrainingArguments)

    Raises:
        UsageError: an unknown field, a value outside a field's choices, or contradictory settings, with the fix.
    """
    model_args, data_args, training_args = _parse((ModelArguments, DataArguments, SERTrainingArguments), config_path,
                                                  argv, prog=prog)
    check_folds(data_args, single_fold)
    check_task(model_args, data_args, training_args)
    return model_args, data_args, training_args


def check_task(model_args, data_args, training_args):
    """Refuse settings of one dataclass that the task of another cannot honour (`--task dimensional`).

    Raises:
        UsageError: pseudo-labels or `--init_head_from` with --task dimensional, or `--dimension_range` without it.
    """
    if training_args.task != "dimensional":
        if data_args.dimension_range is not None:
            raise UsageError("--dimension_range scales the ratings of --task dimensional: add --task dimensional or "
                             "drop --dimension_range")
        return
    if data_args.unlabeled_dir or data_args.pseudo_pool_fold is not None:
        raise UsageError("pseudo-labels keep the clips whose top class score passes --pseudo_threshold; a --task "
                         "dimensional model has no classes: drop --unlabeled_dir / --pseudo_pool_fold")
    if model_args.init_head_from:
        raise UsageError("--init_head_from starts from a --probe's emotion head, and --task dimensional has a "
                         "regression head (and no probe): drop --init_head_from")


def parse_data_config(config_path=None, argv=None, defaults=None):
    """The DataArguments alone: `defaults` (e.g. a run's saved data_args.json), then the config, then argv.

    The config is a whole recipe YAML, checked like any other (an unknown key is an error); its model and
    training fields are ignored here.
    """
    (data_args,) = _parse((DataArguments,), config_path, argv, defaults)
    check_folds(data_args)
    return data_args


def _help_command(prog):
    """How the user runs the recipe's --help: `python recipes/finetune.py` or `ser-hf train`."""
    prog = prog or "recipes/finetune.py"
    return f"python {prog}" if prog.endswith(".py") else prog


def _parse(dataclass_types, config_path, argv, defaults=None, prog=None):
    parser = _Parser(dataclass_types)
    fields = {f.name for cls in dataclass_types for f in dataclasses.fields(cls)}
    values = dict(defaults or {})
    if config_path is not None:
        values.update({k: v for k, v in read_config(config_path).items() if k in fields})
    parser.set_defaults(**values)
    argv = list(argv or [])
    options = fields | {f"no_{name}" for name in fields}
    for override in read_overrides(argv):
        if override.name not in options:
            flags = [f"--{name}" for name in options]
            raise UsageError(f"unknown option --{override.name}{did_you_mean(f'--{override.name}', flags)}; "
                             f"`{_help_command(prog)} --help` lists every field")
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except UsageError:
        raise
    except ValueError as err:  # the dataclasses' own checks, ours and TrainingArguments'
        raise UsageError(str(err)) from None


# The Trainer fields a recipe user sets most (resuming is ser_hf's --resume); `--help_all` lists the other ~110.
_COMMON_TRAINER_FIELDS = (
    "output_dir", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "per_device_eval_batch_size", "lr_scheduler_type", "warmup_steps", "weight_decay",
    "bf16", "fp16", "eval_strategy", "save_strategy", "save_total_limit", "load_best_model_at_end",
    "metric_for_best_model", "dataloader_num_workers", "seed", "report_to", "push_to_hub",
    "hub_model_id",
)


def _describe(f, hint):
    choices = [typing.get_args(a) for a in (hint, *typing.get_args(hint)) if typing.get_origin(a) is Literal]
    named = [a for a in (*typing.get_args(hint), hint) if isinstance(a, type) and a is not type(None)]
    kind = "{" + ",".join(map(str, choices[0])) + "}" if choices else (named[0].__name__ if named else "VALUE")
    default = f.default if f.default is not dataclasses.MISSING else None
    text = " ".join(str(f.metadata.get("help", "")).split())
    return f"  --{f.name} {kind}\n      {text} (default: {default})"


def short_help(prog):
    """The recipe's options, ours first and grouped, with the common Trainer fields; `--help_all` has all."""
    lines = [f"usage: {prog} CONFIG.yaml [--field value ...]", "",
             "Every field can be set in the YAML config or on the command line, which wins.", ""]
    ser_training = [f for f in dataclasses.fields(SERTrainingArguments)
                    if f.name not in {g.name for g in dataclasses.fields(TrainingArguments)}]
    trainer = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    groups = (("model", ModelArguments, dataclasses.fields(ModelArguments)),
              ("data", DataArguments, dataclasses.fields(DataArguments)),
              ("training (ser_hf)", SERTrainingArguments, ser_training),
              ("training (transformers.TrainingArguments, the common ones)", TrainingArguments,
               [trainer[name] for name in _COMMON_TRAINER_FIELDS]))
    for title, cls, fields in groups:
        hints = typing.get_type_hints(cls)
        lines += [f"{title}:"] + [_describe(f, hints[f.name]) for f in fields] + [""]
    lines.append(f"`{prog} --help_all` lists every TrainingArguments field.")
    return "\n".join(lines)


def full_help(prog):
    """Every field of the three dataclasses, Trainer fields included (what `--help_all` prints)."""
    return _Parser((ModelArguments, DataArguments, SERTrainingArguments), prog=prog).format_help()


def write_config(values, path, header=""):
    """Write a config mapping as a recipe YAML (keys in their order), with an optional comment header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    write_text_atomic(path, comment + yaml.safe_dump(values, sort_keys=False, default_flow_style=None))
    return path

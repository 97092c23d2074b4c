"""Recipe arguments: one YAML file plus command-line overrides of any field (the command line wins).

Three dataclasses, parsed together by `HfArgumentParser` as in transformers' example scripts:
`ModelArguments`, `DataArguments` and `SERTrainingArguments` (TrainingArguments plus what SER adds).
"""

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

logger = logging.getLogger(__name__)

CORPORA = ("ravdess", "demo", "cremad", "manifest", "audiofolder", "hub")
PADDING_MODES = ("max_length", "longest", "crop")


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


@dataclass
class ModelArguments:
    """Which encoder to fine-tune and what to freeze."""

    model_name_or_path: str | None = field(
        default="facebook/wav2vec2-base",
        metadata={"help": "Hub id or local folder of a pretrained audio encoder. null with model_type: random init."},
    )
    model_type: str | None = field(
        default=None,
        metadata={"help": "Build a randomly initialised model of this type (wav2vec2, hubert, wavlm, ...) from "
                  "model_config_overrides instead of loading weights. Used by the offline demo and the tests."},
    )
    model_config_overrides: str | None = field(
        default=None,
        metadata={"help": "JSON object of config fields to override, e.g. dropouts, layerdrop, SpecAugment "
                  "(mask_time_prob, mask_feature_prob), or the whole architecture for a random init."},
    )
    freeze_feature_encoder: bool = field(
        default=True, metadata={"help": "Freeze the convolutional feature encoder (standard for wav2vec2 fine-tuning)."}
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
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the pretrained model."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model code from the Hub to run. Off unless you trust the repo."}
    )

    def __post_init__(self):
        self.model_config_overrides = _json_dict(self.model_config_overrides)
        # YAML's null arrives as None; on the command line it is the word.
        if str(self.model_name_or_path).lower() in ("null", "none", ""):
            self.model_name_or_path = None
        if self.model_name_or_path is None and self.model_type is None:
            raise ValueError("set model_name_or_path (pretrained) or model_type (random init from a config)")


@dataclass
class DataArguments:
    """Which corpus, which speaker fold, and how clips are cut and padded."""

    corpus: str = field(
        default="ravdess",
        metadata={"help": f"One of {', '.join(CORPORA)}. 'manifest': a CSV/TSV/JSONL with path, label and optional "
                  "speaker columns (--manifest); 'audiofolder': a folder with metadata.csv (file_name, label, "
                  "optional speaker); 'hub': a Hub dataset (--dataset_name) with audio and label columns."},
    )
    data_dir: str = field(
        default="data/ravdess",
        metadata={"help": "Corpus folder. RAVDESS: downloaded and extracted here when missing; demo: generated here; "
                  "CREMA-D: a git-lfs clone (or its AudioWAV folder)."},
    )
    labels: int = field(default=21, metadata={"help": "CREMA-D label set: 21 (emotion x intensity) or 6 (emotion)."})
    manifest: str | None = field(default=None, metadata={"help": "corpus=manifest: the manifest file."})
    train_manifest: str | None = field(
        default=None, metadata={"help": "Your own split: train CSV (path, label[, speaker]); labels come from it."}
    )
    validation_manifest: str | None = field(default=None, metadata={"help": "Your own split: validation CSV."})
    test_manifest: str | None = field(default=None, metadata={"help": "Your own split: optional test CSV."})
    dataset_name: str | None = field(default=None, metadata={"help": "corpus=hub: the dataset id (or a local folder)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "corpus=hub: the dataset's config."})
    dataset_split: str = field(default="train", metadata={"help": "corpus=hub: the split holding the corpus."})
    audio_column: str = field(default="audio", metadata={"help": "corpus=hub: the audio column."})
    label_column: str = field(default="label", metadata={"help": "corpus=hub: the label column."})
    speaker_column: str | None = field(
        default=None, metadata={"help": "corpus=hub: the speaker column (without one, speakers may leak)."}
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
    max_duration_seconds: float = field(
        default=5.0, metadata={"help": "Training clips are randomly cropped to at most this many seconds."}
    )
    eval_max_duration_seconds: float | None = field(
        default=None,
        metadata={"help": "Fixed crop (from the start) for evaluation. null: the whole clip, exactly what "
                  "pipeline('audio-classification') sees, so the reported metrics are the pipeline's."},
    )
    padding: str = field(
        default="max_length",
        metadata={"help": "Training batches: 'max_length' pads every clip to max_duration_seconds, "
                  "'longest' to the longest clip in the batch, 'crop' cuts every clip to a random window as long "
                  "as the batch's shortest clip (no padding at all: for models without an attention mask, "
                  "which otherwise learn from zeros that the pipeline never gives them)."},
    )
    augmentation: str = field(
        default="none",
        metadata={"help": "Training augmentation preset (ser_hf/augment.py): none, seed21 (noise, pitch shift, "
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
    scan_workers: int | None = field(default=None, metadata={"help": "Processes for the audio scan (default: all cores)."})

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {CORPORA}, got {self.corpus!r}")
        if self.labels not in (21, 6):
            raise ValueError(f"labels must be 21 or 6 (CREMA-D), got {self.labels}")
        if self.corpus == "manifest" and not (self.manifest or self.train_manifest):
            raise ValueError("corpus=manifest needs --manifest FILE or --train_manifest/--validation_manifest")
        if self.corpus == "hub" and not self.dataset_name:
            raise ValueError("corpus=hub needs --dataset_name")
        if bool(self.train_manifest) != bool(self.validation_manifest):
            raise ValueError("give both --train_manifest and --validation_manifest (and optionally --test_manifest)")
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {self.padding!r}")


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
    plateau_metric: str = field(
        default="loss", metadata={"help": "reduce_lr_on_plateau watches this evaluation metric (without 'eval_')."}
    )
    plateau_factor: float = field(default=0.5, metadata={"help": "reduce_lr_on_plateau multiplies the LR by this."})
    plateau_patience: int = field(default=2, metadata={"help": "reduce_lr_on_plateau waits this many evaluations."})
    class_weighting: str = field(
        default="none",
        metadata={"help": "Weighted cross-entropy from the training class counts: none, inverse or sqrt_inverse."},
    )
    balanced_sampling: bool = field(
        default=False,
        metadata={"help": "Draw training clips with probability 1 / (clips of their class), with replacement, so "
                  "every class is seen equally often per epoch (an alternative to class_weighting)."},
    )
    diagnostics_collapse_evaluations: int = field(
        default=2, metadata={"help": "Warn when the model predicts one class for most of the evaluation set this "
                             "many evaluations in a row (ser_hf/diagnostics.py)."}
    )
    diagnostics_stall_evaluations: int = field(
        default=3, metadata={"help": "Warn when metric_for_best_model has not moved for this many evaluations."}
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
        if self.resume and self.resume_from_checkpoint is None:
            self.resume_from_checkpoint = "auto"
        if self.hub_token:
            # The Trainer pickles these arguments into training_args.bin in every checkpoint and the output dir:
            # hand the token to huggingface_hub through the environment instead, so it is never written.
            os.environ["HF_TOKEN"] = self.hub_token
            self.hub_token = None
            logger.warning("--hub_token moved to HF_TOKEN for this process; prefer `hf auth login` or HF_TOKEN "
                           "(a token on the command line is visible to other users in the process list)")
        super().__post_init__()


def config_fields():
    """Names of every field a YAML config may set."""
    return {f.name for cls in (ModelArguments, DataArguments, SERTrainingArguments) for f in dataclasses.fields(cls)}


def parse_config(config_path=None, argv=None):
    """Read a YAML config, apply command-line overrides, and build the three argument dataclasses.

    Args:
        config_path: YAML file whose keys are field names of the three dataclasses, or None.
        argv: command-line arguments (`--field value`), which win over the YAML.

    Returns:
        (ModelArguments, DataArguments, SERTrainingArguments)
    """
    parser = HfArgumentParser((ModelArguments, DataArguments, SERTrainingArguments))
    if config_path is not None:
        values = yaml.safe_load(Path(config_path).read_text()) or {}
        unknown = sorted(set(values) - config_fields())
        if unknown:
            raise ValueError(f"{config_path}: unknown field(s) {unknown}; see `recipes/finetune.py --help`")
        parser.set_defaults(**values)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=list(argv or []))
    return model_args, data_args, training_args

"""Build the audio-classification model and its feature extractor, and freeze what the config asks."""

import logging
from pathlib import Path

from huggingface_hub import try_to_load_from_cache
from huggingface_hub.constants import is_offline_mode
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    Wav2Vec2FeatureExtractor,
    WhisperFeatureExtractor,
)

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)


def check_model_available(model_args):
    """Fail in the first second, with the fix, when the pretrained encoder cannot be loaded.

    Without this, a missing folder or an offline machine without the model in its cache shows up only after the
    corpus is prepared and scanned, as retries and transformers' OSError.

    Raises:
        UsageError: a local folder that is missing or holds no config.json, or a Hub id that is not in the local
            cache while offline (HF_HUB_OFFLINE=1).
    """
    name = model_args.model_name_or_path
    if name is None:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"--model_name_or_path {name}: the folder has no config.json (is it a model folder?)")
        return
    if name.startswith(("/", ".", "~")) or path.exists():
        raise UsageError(f"--model_name_or_path {name}: no such model folder")
    if is_offline_mode() and not isinstance(try_to_load_from_cache(name, "config.json",
                                                                   revision=model_args.model_revision), str):
        raise UsageError(
            f"{name} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it once where there "
            f"is a network (`hf download {name}`), pass a local folder with --model_name_or_path, or train an encoder "
            "from scratch with --model_name_or_path null --model_type wav2vec2 (as recipes/configs/demo.yaml does)")


def build_model(model_args, id2label, label2id, problem_type=None):
    """Load a pretrained encoder (or build a random one from a config) with a classification head.

    Args:
        model_args: `ModelArguments`.
        id2label: {int: name}, stored in config.json so the pipeline prints emotion names.
        label2id: {name: int}.
        problem_type: "regression" for `--task dimensional` (one output per dimension of `id2label`; config.json
            says so, and the audio-classification pipeline then gives the raw outputs, no softmax); None: a
            single-label classifier.

    Returns:
        (model, feature_extractor)
    """
    overrides = dict(model_args.model_config_overrides)
    # No num_labels: it follows from id2label, and stated beside an id2label loaded from a checkpoint with another
    # label set (a previous ser_hf output) transformers warns that the two disagree before id2label replaces it.
    overrides.update(
        id2label=id2label,
        label2id=label2id,
        use_weighted_layer_sum=model_args.use_weighted_layer_sum,
    )
    # Stated either way: a checkpoint fine-tuned from a regression output must become a classifier again.
    overrides["problem_type"] = problem_type
    if model_args.model_name_or_path is None:
        config = _without_layerdrop_under_weighted_sum(AutoConfig.for_model(model_args.model_type, **overrides))
        model = AutoModelForAudioClassification.from_config(config)
        feature_extractor = _feature_extractor_for(config)
    else:
        hub_kwargs = {"revision": model_args.model_revision, "trust_remote_code": model_args.trust_remote_code}
        config = _without_layerdrop_under_weighted_sum(
            AutoConfig.from_pretrained(model_args.model_name_or_path, **overrides, **hub_kwargs))
        # safetensors only: a pickled .bin checkpoint can run code when loaded. A checkpoint that already
        # has a head for other labels gets a new one (ignore_mismatched_sizes), as in transformers' example.
        model = AutoModelForAudioClassification.from_pretrained(
            model_args.model_name_or_path, config=config, use_safetensors=True, ignore_mismatched_sizes=True,
            **hub_kwargs,
        )
        feature_extractor = AutoFeatureExtractor.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    apply_freezing(model, model_args)
    return model, feature_extractor


def _without_layerdrop_under_weighted_sum(config):
    # transformers 5.23 collects hidden states as the layers run: a layer that layerdrop skips leaves none, and the
    # weighted layer sum then crashes on the shorter stack (wav2vec2, HuBERT, WavLM and Whisper alike).
    name = "encoder_layerdrop" if config.model_type == "whisper" else "layerdrop"
    if config.use_weighted_layer_sum and getattr(config, name, 0):
        logger.warning("%s %s -> 0: with use_weighted_layer_sum every layer must run (a dropped layer leaves no "
                       "hidden state to weigh)", name, getattr(config, name))
        setattr(config, name, 0.0)
    return config


def _feature_extractor_for(config):
    if config.model_type == "whisper":
        return _whisper_feature_extractor(config)
    # A model with a layer-norm feature encoder handles padding through the attention mask; a
    # group-norm one (wav2vec2-base) normalises over time, so it must not be given a mask (as upstream).
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer",
    )


def _whisper_feature_extractor(config):
    # Whisper's encoder refuses any input but exactly 2 * max_source_positions log-mel frames (its conv2 has
    # stride 2) of 10 ms: the feature extractor must pad every clip to that many seconds (openai's 1500: 30 s).
    hop_length = 160
    chunk_length, rest = divmod(2 * config.max_source_positions * hop_length, SAMPLE_RATE)
    if rest or not chunk_length:
        raise UsageError(f"max_source_positions={config.max_source_positions}: a Whisper encoder built from a config "
                         "needs a multiple of 50 (its input is whole seconds of 20 ms positions; openai's is 1500)")
    return WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=SAMPLE_RATE,
                                   hop_length=hop_length, chunk_length=chunk_length)


def model_type_of(model_args):
    """The architecture the run will build (config.json's model_type), read without loading any weights."""
    if model_args.model_name_or_path is None:
        return model_args.model_type
    return AutoConfig.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                      trust_remote_code=model_args.trust_remote_code).model_type


def check_padding_mode(model_args, data_args):
    """Refuse a padding mode the model cannot honour, in the first second; say when one changes nothing.

    Whisper's feature extractor pads (or truncates) every clip to its fixed chunk (30 s for openai/whisper-*) and
    its encoder accepts no other length: 'max_length' and 'longest' both give that chunk, and 'crop' (no padding at
    all) cannot be honoured.

    Raises:
        UsageError: padding 'crop' with a Whisper encoder.
    """
    if model_type_of(model_args) != "whisper":
        return
    if data_args.padding == "crop":
        raise UsageError("--padding crop cuts batches to their shortest clip, but a Whisper encoder takes only its "
                         "fixed-length input (30 s for openai/whisper-*, silence-padded by its feature extractor): "
                         "use --padding longest")
    logger.info("Whisper: every clip is padded with silence to the feature extractor's chunk length, as the pipeline "
                "pads it; padding=%s changes nothing", data_args.padding)


def is_regression(config):
    """Whether a model's config (or a pipeline's model's) is a `--task dimensional` regression: raw outputs, no classes."""
    return getattr(config, "problem_type", None) == "regression"


def uses_attention_mask(feature_extractor):
    """Whether the model is meant to receive an attention mask (the feature extractor says so upstream)."""
    return bool(getattr(feature_extractor, "return_attention_mask", False))


def apply_freezing(model, model_args):
    """Freeze the feature encoder, the bottom transformer layers, or the whole encoder.

    The same options for every architecture. wav2vec2-like encoders: the conv feature encoder, and below the bottom
    N layers its projection too. Whisper: its conv front end (conv1, conv2 and the fixed sinusoidal positions), and
    for the whole encoder its own `freeze_encoder`.

    Returns:
        The number of trainable parameters, for the log.
    """
    whisper = model.config.model_type == "whisper"
    encoder, front_end, layers = _encoder_parts(model)
    if model_args.freeze_encoder:
        if whisper:
            model.freeze_encoder()
        else:
            encoder.requires_grad_(False)
    else:
        if model_args.freeze_feature_encoder:
            if whisper:
                _freeze(front_end)
            else:
                model.freeze_feature_encoder()
        if model_args.freeze_encoder_layers:
            if model_args.freeze_encoder_layers > len(layers):
                raise ValueError(
                    f"freeze_encoder_layers={model_args.freeze_encoder_layers} but the model has {len(layers)} layers"
                )
            # Below the first trained layer everything is frozen: the front end (and wav2vec2's projection) too.
            below = front_end if whisper else [*front_end, encoder.feature_projection]
            _freeze([*below, *layers[: model_args.freeze_encoder_layers]])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("Parameters: %s trainable of %s", f"{trainable:,}", f"{total:,}")
    return trainable


def _encoder_parts(model):
    """(the encoder, its front end below the transformer, its transformer layers) of an audio classifier."""
    if model.config.model_type == "whisper":
        # WhisperForAudioClassification holds its encoder as `encoder`; its base_model_prefix ("model") names the
        # seq2seq WhisperModel, which the classifier does not have.
        encoder = model.encoder
        return encoder, [encoder.conv1, encoder.conv2, encoder.embed_positions], encoder.layers
    encoder = getattr(model, model.base_model_prefix)
    return encoder, [encoder.feature_extractor], encoder.encoder.layers


def _freeze(modules):
    for module in modules:
        module.requires_grad_(False)

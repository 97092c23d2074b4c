"""Build the audio-classification model and its feature extractor, and freeze what the config asks."""

import logging
from pathlib import Path

from huggingface_hub import try_to_load_from_cache
from huggingface_hub.constants import is_offline_mode
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

from ser_hf.config import UsageError
from ser_hf.data.audio import SAMPLE_RATE

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


def build_model(model_args, id2label, label2id):
    """Load a pretrained encoder (or build a random one from a config) with a classification head.

    Args:
        model_args: `ModelArguments`.
        id2label: {int: name}, stored in config.json so the pipeline prints emotion names.
        label2id: {name: int}.

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
    if model_args.model_name_or_path is None:
        config = AutoConfig.for_model(model_args.model_type, **overrides)
        model = AutoModelForAudioClassification.from_config(config)
        feature_extractor = _feature_extractor_for(config)
    else:
        hub_kwargs = {"revision": model_args.model_revision, "trust_remote_code": model_args.trust_remote_code}
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, **overrides, **hub_kwargs)
        # safetensors only: a pickled .bin checkpoint can run code when loaded. A checkpoint that already
        # has a head for other labels gets a new one (ignore_mismatched_sizes), as in transformers' example.
        model = AutoModelForAudioClassification.from_pretrained(
            model_args.model_name_or_path, config=config, use_safetensors=True, ignore_mismatched_sizes=True,
            **hub_kwargs,
        )
        feature_extractor = AutoFeatureExtractor.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    apply_freezing(model, model_args)
    return model, feature_extractor


def _feature_extractor_for(config):
    # A model with a layer-norm feature encoder handles padding through the attention mask; a
    # group-norm one (wav2vec2-base) normalises over time, so it must not be given a mask (as upstream).
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer",
    )


def uses_attention_mask(feature_extractor):
    """Whether the model is meant to receive an attention mask (the feature extractor says so upstream)."""
    return bool(getattr(feature_extractor, "return_attention_mask", False))


def apply_freezing(model, model_args):
    """Freeze the feature encoder, the bottom transformer layers, or the whole encoder.

    Returns:
        The number of trainable parameters, for the log.
    """
    encoder = getattr(model, model.base_model_prefix)
    if model_args.freeze_encoder:
        for param in encoder.parameters():
            param.requires_grad = False
    else:
        if model_args.freeze_feature_encoder:
            model.freeze_feature_encoder()
        if model_args.freeze_encoder_layers:
            layers = encoder.encoder.layers
            if model_args.freeze_encoder_layers > len(layers):
                raise ValueError(
                    f"freeze_encoder_layers={model_args.freeze_encoder_layers} but the model has {len(layers)} layers"
                )
            # Below the first trained layer everything is frozen: feature encoder and projection too.
            for module in (encoder.feature_extractor, encoder.feature_projection, *layers[: model_args.freeze_encoder_layers]):
                for param in module.parameters():
                    param.requires_grad = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("Parameters: %s trainable of %s", f"{trainable:,}", f"{total:,}")
    return trainable

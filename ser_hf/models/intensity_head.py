"""The intensity head of `--task multitask`: a linear layer on the vector the emotion classifier reads.

transformers' audio classifiers (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper) all end in
`logits = self.classifier(pooled)`, where `pooled` is the projector's output averaged over the frames the
attention mask keeps (Whisper: over all frames). `pooled_capture` catches that vector with a forward pre-hook on
`classifier` as the model computes it, so the intensity head sees exactly what the emotion classifier sees, from one
forward pass, with the model's own masking: nothing of the model's forward is re-implemented here.

The head is saved beside a model as `intensity_head.safetensors` and `intensity_config.json` (its label names,
the loss weight); model.safetensors stays a plain `AutoModelForAudioClassification` that `pipeline()` loads.
"""

import contextlib
import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from ser_hf.storage import write_text_atomic

INTENSITY_HEAD_FILE = "intensity_head.safetensors"


INTENSITY_CONFIG_FILE = "intensity_config.json"


class IntensityHead(nn.Linear):
    """A linear layer from the pooled vector to intensity logits, with its label names.

    Args:
        in_features: the size of the vector the emotion classifier reads (`model.classifier.in_features`).
        names: intensity names in id order.
    """

    def __init__(self, in_features, names):
        super().__init__(in_features, len(names))
        self.names = tuple(names)


def attach_intensity_head(model, names):
    """Add an `IntensityHead` as `model.intensity_head`, initialised as transformers initialises the classifier.

    Returns:
        The head.
    """
    head = IntensityHead(model.classifier.in_features, names)
    std = getattr(model.config, "initializer_range", 0.02)
    nn.init.normal_(head.weight, std=std)
    nn.init.zeros_(head.bias)
    model.intensity_head = head.to(model.classifier.weight.device)
    return model.intensity_head


@contextlib.contextmanager
def pooled_capture(model):
    """Collect the vectors `model.classifier` receives while the block runs (one per forward call).

    Yields:
        A list that fills with one (batch x features) tensor per forward; `torch.cat` them for the whole batch
        (the clip-by-clip evaluation of mask-less models calls the model once per clip).
    """
    captured = []
    handle = model.classifier.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()


def save_intensity_head(head, output_dir, loss_weight=None):
    """Write `intensity_head.safetensors` and `intensity_config.json` (names, input size, loss weight)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()},
              str(output_dir / INTENSITY_HEAD_FILE), metadata={"format": "pt"})
    config = {"id2label": dict(enumerate(head.names)), "in_features": head.in_features,
              "intensity_loss_weight": loss_weight,
              "reads": "the vector model.classifier receives (projector output, masked mean over frames)"}
    write_text_atomic(output_dir / INTENSITY_CONFIG_FILE, json.dumps(config, indent=2))


def has_intensity_head(model_dir):
    """Whether a model folder holds a saved intensity head."""
    return (Path(model_dir) / INTENSITY_HEAD_FILE).is_file() and (Path(model_dir) / INTENSITY_CONFIG_FILE).is_file()


def load_intensity_head(model_dir):
    """The `IntensityHead` saved in a model folder (CPU, eval mode).

    Raises:
        FileNotFoundError: the folder has no intensity head.
    """
    model_dir = Path(model_dir)
    if not has_intensity_head(model_dir):
        raise FileNotFoundError(f"{model_dir} has no {INTENSITY_HEAD_FILE} / {INTENSITY_CONFIG_FILE} "
                                "(trained without --task multitask?)")
    config = json.loads((model_dir / INTENSITY_CONFIG_FILE).read_text())
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    head = IntensityHead(int(config["in_features"]), names)
    head.load_state_dict(load_file(str(model_dir / INTENSITY_HEAD_FILE)))
    return head.eval()

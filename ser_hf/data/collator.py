"""Batches for the Trainer: waveforms padded to one length with an attention mask, fixed-length features stacked."""

import numpy as np
import torch

from ser_hf.data.audio import SAMPLE_RATE


class AudioCollator:
    """Pad raw-waveform inputs to one length and build an attention mask; stack fixed-length features.

    For waveforms the mask is always built: models that take one get it; for the others `SERTrainer` uses it only
    to find each clip's true length during evaluation.

    2-D features (Whisper's log-mel `input_features`, mel bins x frames) come from the feature extractor already
    padded with silence to the model's one input length: they are stacked as they are, without an attention mask.
    Whisper's encoder ignores one and pools over the padding too, and the pipeline passes none: what the model sees
    here, batched or not, is what it sees in the pipeline.

    Labels are class ids (a long tensor of the batch's size) or, for `--task dimensional`, three floats per clip
    (a float32 tensor of batch x 3).

    Args:
        input_name: the model's input name ("input_values" for wav2vec2-like encoders, "input_features" for Whisper).
        pad_to_seconds: pad every batch of waveforms to this length ('max_length' padding); None pads to the longest
            clip. Fixed-length features ignore it.
        padding_value: the feature extractor's padding value.
    """

    def __init__(self, input_name="input_values", pad_to_seconds=None, padding_value=0.0):
        self.input_name = input_name
        self.pad_to = None if pad_to_seconds is None else int(pad_to_seconds * SAMPLE_RATE)
        self.padding_value = padding_value

    def __call__(self, features):
        if np.ndim(features[0][self.input_name]) == 2:
            batch = {self.input_name: self._stack(features)}
        else:
            batch = self._pad(features)
        if "labels" in features[0] and np.ndim(features[0]["labels"]) == 1:  # --task dimensional: batch x 3 floats
            batch["labels"] = torch.tensor(np.asarray([f["labels"] for f in features], dtype=np.float32))
        elif "labels" in features[0]:
            batch["labels"] = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)
        if "intensity_labels" in features[0]:
            batch["intensity_labels"] = torch.tensor([int(f["intensity_labels"]) for f in features], dtype=torch.long)
        if "path" in features[0]:
            batch["paths"] = [f["path"] for f in features]
        return batch

    def _pad(self, features):
        lengths = [len(f[self.input_name]) for f in features]
        target = max(max(lengths), self.pad_to or 0)
        values = torch.full((len(features), target), self.padding_value, dtype=torch.float32)
        mask = torch.zeros((len(features), target), dtype=torch.long)
        for row, (feature, length) in enumerate(zip(features, lengths)):
            values[row, :length] = torch.as_tensor(feature[self.input_name])
            mask[row, :length] = 1
        return {self.input_name: values, "attention_mask": mask}

    def _stack(self, features):
        values = [torch.as_tensor(np.asarray(f[self.input_name], dtype=np.float32)) for f in features]
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"{self.input_name} of different shapes {sorted(shapes)} in one batch: 2-D features must "
                             "come padded to the model's one input length (Whisper's feature extractor does this)")
        return torch.stack(values)

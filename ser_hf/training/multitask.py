"""Emotion + intensity multi-task training (`--task multitask`): a second head on the emotion head's input.

transformers' audio classifiers (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper) all end in
`logits = self.classifier(pooled)`, where `pooled` is the projector's output averaged over the frames the
attention mask keeps (Whisper: over all frames). A forward pre-hook on `classifier` catches that `pooled` vector as
the model computes it, so the intensity head sees exactly what the emotion classifier sees, from one forward pass,
with the model's own masking: nothing of the model's forward is re-implemented here.

How the head lives with the Trainer:
- it is attached as a submodule (`model.intensity_head`): the optimizer trains it, every checkpoint's
  model.safetensors holds it (so `--resume` and `load_best_model_at_end` restore it with everything else);
- the final save (`MultitaskTrainer.save_model`, not the checkpoints) leaves it out of model.safetensors, which
  stays a plain `AutoModelForAudioClassification` that `pipeline()` loads without unexpected keys, and writes it
  beside: `intensity_head.safetensors` and `intensity_config.json` (its label names, the loss weight).
"""


import torch
import torch.nn.functional as F

from ser_hf.corpora import get_corpus
from ser_hf.corpora.intensity import IGNORE_INDEX, intensity_id, intensity_names
from ser_hf.errors import UsageError
from ser_hf.models.intensity_head import IntensityHead, pooled_capture, save_intensity_head
from ser_hf.training.trainer import NonFiniteError, SERTrainer


def check_multitask_data(data_args):
    """Refuse `--task multitask` where the emotion labels already hold the intensity, in the first second.

    Args:
        data_args: the resolved `DataArguments`.

    Raises:
        UsageError: emotion x intensity labels (CREMA-D's 21, RAVDESS's 15): the emotion head would already
            predict the level (use the emotion labels: CREMA-D --labels 6, RAVDESS --labels 8).
    """
    spec = get_corpus(data_args.corpus)
    if spec.emotions(data_args.labels) is not None:
        raise UsageError(f"--task multitask with {spec.display_name} --labels {data_args.labels}: the labels already "
                         f"hold the intensity; use --labels {spec.emotion_label_set} (the intensity head learns it)")


def mark_intensity(splits, corpus, rows_for_names=None):
    """Give every row an "intensity_label" id (IGNORE_INDEX = -100 where it has none), and the intensity names.

    Args:
        splits: split name -> rows (scanned).
        corpus: `DataArguments.corpus`.
        rows_for_names: rows that fix the names of a corpus without a fixed set (default: the training rows).

    Returns:
        (split name -> rows with "intensity_label", names in id order)

    Raises:
        UsageError: no training clip has an intensity.
    """
    names = intensity_names(corpus, rows_for_names if rows_for_names is not None else splits["train"])
    marked = with_intensity_ids(splits, names)
    if not names or all(row["intensity_label"] == IGNORE_INDEX for row in marked["train"]):
        raise UsageError(f"--task multitask: no training clip of corpus {corpus!r} has an intensity (RAVDESS, the "
                         "demo, CREMA-D --labels 6, or a manifest with an intensity column have one)")
    return marked, names


def with_intensity_ids(splits, names):
    """Rows with an "intensity_label" id in `names` (IGNORE_INDEX where a clip has none): {split: rows}."""
    return {split: [{**row, "intensity_label": intensity_id(row, names)} for row in rows]
            for split, rows in splits.items()}


def masked_intensity_loss(logits, targets):
    """Mean cross-entropy over the clips that have an intensity; 0 (still a graph) when none has.

    `F.cross_entropy(..., ignore_index=-100)` alone returns NaN for a batch of ignored clips only (0 / 0), which
    the NaN guard would take for a broken run; a CREMA-D batch of XX clips is ordinary.
    """
    valid = (targets != IGNORE_INDEX).sum()
    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / valid.clamp(min=1)


class MultitaskTrainer(SERTrainer):
    """SERTrainer whose loss adds `intensity_loss_weight` x the intensity loss, and whose final save keeps the
    emotion model plain (see the module docstring).

    Args:
        intensity_loss_weight: the weight of the intensity cross-entropy.
        Everything else goes to `SERTrainer`; the model must have an `intensity_head` (`attach_intensity_head`).
    """

    def __init__(self, *args, intensity_loss_weight=0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.intensity_loss_weight = intensity_loss_weight
        if not isinstance(getattr(self.model, "intensity_head", None), IntensityHead):
            raise ValueError("MultitaskTrainer needs a model with an intensity head (attach_intensity_head)")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs.pop("intensity_labels", None)
        with pooled_capture(self.model) as pooled:
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
        if targets is not None:
            intensity_logits = self.model.intensity_head(torch.cat(pooled, dim=0))
            intensity_loss = masked_intensity_loss(intensity_logits, targets)
            if not torch.isfinite(intensity_loss):
                raise NonFiniteError(f"the intensity loss is {intensity_loss.item()}; the last saved checkpoint is "
                                     "intact. Lower the learning rate.")
            loss = loss + self.intensity_loss_weight * intensity_loss
        return (loss, outputs) if return_outputs else loss

    def save_model(self, output_dir=None, _internal_call=False):
        if _internal_call:  # a checkpoint: the head stays in model.safetensors, for resume and the best model
            return super().save_model(output_dir, _internal_call=True)
        output_dir = output_dir or self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        head = model.intensity_head
        del model.intensity_head  # model.safetensors: the plain emotion classifier
        try:
            super().save_model(output_dir, _internal_call=False)
        finally:
            model.intensity_head = head
        if self.args.should_save:
            save_intensity_head(head, output_dir, self.intensity_loss_weight)



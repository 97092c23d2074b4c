"""Load a trained output dir for evaluation: the same SERTrainer prediction path the training run used."""

from pathlib import Path

import torch

from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from ser_hf.audio import AudioCollator
from ser_hf.config import SERTrainingArguments
from ser_hf.modeling import uses_attention_mask
from ser_hf.trainer import SERTrainer


def load_trained(model_dir, scratch_dir, batch_size=16):
    """A trained model ready to predict datasets built by `ser_hf.data.build_datasets`.

    Models without an attention mask are evaluated clip by clip at their own length, as in training, so the
    scores equal the pipeline's.

    Args:
        model_dir: a finetune.py output dir (safetensors weights, config.json, preprocessor_config.json).
        scratch_dir: an empty folder the Trainer may write to (nothing is saved there).
        batch_size: evaluation batch size.

    Returns:
        (SERTrainer, feature_extractor, label_names in id order)
    """
    model = AutoModelForAudioClassification.from_pretrained(Path(model_dir), use_safetensors=True)
    feature_extractor = AutoFeatureExtractor.from_pretrained(Path(model_dir))
    trainer = SERTrainer(
        model=model,
        args=SERTrainingArguments(output_dir=str(scratch_dir), per_device_eval_batch_size=batch_size, report_to="none",
                                  remove_unused_columns=False, dataloader_num_workers=0,
                                  dataloader_pin_memory=torch.cuda.is_available()),
        data_collator=AudioCollator(feature_extractor.model_input_names[0], None, feature_extractor.padding_value),
        uses_attention_mask=uses_attention_mask(feature_extractor),
    )
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return trainer, feature_extractor, label_names

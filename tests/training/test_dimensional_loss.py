"""The loss of --task dimensional: 1 - CCC over the batch (MSE for a batch of one clip), in SERTrainer.compute_loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForAudioClassification, TrainingArguments

from ser_hf.evaluation.dimensional import concordance_cc
from ser_hf.labels import DIMENSIONS, label_maps
from ser_hf.training.trainer import SERTrainer, concordance_loss, regression_loss
from tests.conftest import TINY_ENCODER


def test_the_loss_is_one_minus_the_mean_ccc_of_the_columns():
    generator = torch.Generator().manual_seed(0)
    targets = torch.rand(8, 3, generator=generator)
    predictions = targets + 0.2 * torch.randn(8, 3, generator=generator)
    expected = 1 - np.mean([concordance_cc(predictions[:, i].numpy(), targets[:, i].numpy()) for i in range(3)])
    assert concordance_loss(predictions, targets).item() == pytest.approx(expected, abs=1e-5)
    assert concordance_loss(targets, targets).item() == pytest.approx(0.0, abs=1e-6)
    assert concordance_loss(torch.full((8, 3), 0.5), targets).item() == pytest.approx(1.0)


def test_a_batch_of_one_clip_falls_back_to_mse():
    predictions, targets = torch.tensor([[0.2, 0.4, 0.9]]), torch.tensor([[0.5, 0.5, 0.5]])
    assert concordance_loss(predictions, targets).item() == pytest.approx(F.mse_loss(predictions, targets).item())


def test_the_loss_has_a_finite_gradient_even_for_constant_predictions():
    predictions = torch.full((4, 3), 0.5, requires_grad=True)
    concordance_loss(predictions, torch.rand(4, 3)).backward()
    assert torch.isfinite(predictions.grad).all()


def test_mse_is_the_other_choice_and_a_typo_is_refused():
    predictions, targets = torch.rand(4, 3), torch.rand(4, 3)
    assert regression_loss(predictions, targets, "mse").item() == pytest.approx(F.mse_loss(predictions, targets).item())
    with pytest.raises(ValueError, match="ccc or mse"):
        regression_loss(predictions, targets, "mae")


@pytest.mark.parametrize("kind", ["ccc", "mse"])
def test_the_trainer_computes_the_regression_loss_not_cross_entropy(tmp_path, kind):
    torch.manual_seed(0)
    id2label, label2id = label_maps(DIMENSIONS)
    config = AutoConfig.for_model("wav2vec2", id2label=id2label, label2id=label2id, problem_type="regression",
                                  **TINY_ENCODER)
    model = AutoModelForAudioClassification.from_config(config)
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none")
    args.dimensional_loss = kind  # SERTrainingArguments' field
    trainer = SERTrainer(model=model, args=args)
    inputs = {"input_values": torch.randn(4, 8000), "attention_mask": torch.ones(4, 8000, dtype=torch.long),
              "labels": torch.rand(4, 3)}
    labels = inputs["labels"].clone()
    loss, outputs = trainer.compute_loss(model, dict(inputs), return_outputs=True)
    assert outputs["logits"].shape == (4, 3)
    assert loss.item() == pytest.approx(regression_loss(outputs["logits"], labels, kind).item())

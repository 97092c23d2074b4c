"""`--temperature_scaling`: after training, fit one temperature on the validation clips, fold it into the saved
model's classifier, and evaluate that model, the one on disk, again.

The checkpoint stays an ordinary one: `pipeline("audio-classification")` returns softmax(logits / T) with no custom
code. The labels (argmax) do not change, so UA / WA / macro-F1 do not either; ECE before and after is recorded.
"""

import logging

import numpy as np

from ser_hf.errors import UsageError
from ser_hf.evaluation.calibration import fit_temperature, fold_temperature_into_classifier
from ser_hf.evaluation.held_out import evaluate_split, score_probabilities
from ser_hf.training.final_save import save_final_model_atomically

logger = logging.getLogger(__name__)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def evaluate_with_temperature(trainer, data, label_names, output_dir, fit_split="validation"):
    """Evaluate the held-out splits, fit T on `fit_split`, fold T into the model, save it, evaluate it again.

    Must run on every process (the evaluation and the final save are collective under DDP); every process fits
    the same T from the same gathered logits.

    Args:
        trainer: the SERTrainer after training (its model is changed in place).
        data: {split: dataset} from `build_datasets`; every split but "train" is evaluated.
        label_names: label names in id order.
        output_dir: where the final model was saved; it is saved there again with T folded in.
        fit_split: the split whose logits T is fitted on.

    Returns:
        (results, predictions, temperature): {split: metrics of the calibrated model, with `temperature`,
        `temperature_fitted_on` and `ece_before_temperature` added}, {split: per-clip rows}, T.
    """
    if fit_split not in data:
        raise UsageError(f"temperature_scaling fits on the {fit_split} split, and this run has none")
    splits = [name for name in data if name != "train"]
    before, logits = {}, {}
    for split in splits:
        output = trainer.predict(data[split], metric_key_prefix=split)
        logits[split] = (np.asarray(output.predictions, dtype=np.float64), np.asarray(output.label_ids))
        before[split], _ = score_probabilities(_softmax(logits[split][0]), logits[split][1], data[split], label_names)

    temperature = fit_temperature(*logits[fit_split])
    fold_temperature_into_classifier(trainer.model, temperature)
    save_final_model_atomically(trainer, output_dir)
    logger.info("Temperature scaling: T = %.3f fitted on %s, folded into the classifier of %s", temperature, fit_split,
                output_dir)

    results, predictions = {}, {}
    for split in splits:  # the model as saved: what the pipeline will load
        results[split], predictions[split] = evaluate_split(trainer, data[split], label_names, split)
        changed = sum(a != b for a, b in zip(before[split]["confusion_matrix"], results[split]["confusion_matrix"]))
        if changed:  # only float rounding at a near tie can do this
            logger.warning("%s: %d confusion-matrix row(s) changed after folding T (near-tied logits)", split, changed)
        results[split].update(temperature=temperature, temperature_fitted_on=fit_split,
                              ece_before_temperature=before[split]["ece"])
        logger.info("%s: ECE %.2f %% before temperature scaling, %.2f %% after", split,
                    100 * before[split]["ece"], 100 * results[split]["ece"])
    return results, predictions, temperature

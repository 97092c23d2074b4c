"""Fine-tune a self-supervised speech encoder for speech emotion recognition, speaker-independently.

Usage:
    python recipes/finetune.py recipes/configs/ravdess.yaml [--data_dir DIR] [--output_dir OUT] [--field value ...]
    accelerate launch recipes/finetune.py recipes/configs/ravdess.yaml --data_dir DIR --output_dir OUT

Every field of ModelArguments, DataArguments and TrainingArguments can be set in the YAML or on the
command line (which wins): see `python recipes/finetune.py --help`.
"""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import datasets
import transformers
from transformers import EarlyStoppingCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ser_hf.audio import AudioCollator
from ser_hf.config import parse_config
from ser_hf.data import CORPUS_INFO, build_datasets, load_corpus, split_corpus
from ser_hf.hub import push_output_dir
from ser_hf.labels import label_maps
from ser_hf.metrics import make_compute_metrics
from ser_hf.modeling import build_model, uses_attention_mask
from ser_hf.reporting import (
    ModelCardInfo,
    command_line,
    evaluate_split,
    results_table,
    write_predictions_csv,
    write_reports,
)
from ser_hf.trainer import SERTrainer

logger = logging.getLogger("ser_hf")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_line("recipes/finetune.py", argv)
    config_path = argv.pop(0) if argv and argv[0].endswith((".yaml", ".yml")) else None
    model_args, data_args, training_args = parse_config(config_path, argv)

    # Our own messages (splits, counts, skipped files) on the main process; libraries at the Trainer's level.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logger.setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    datasets.utils.logging.set_verbosity(training_args.get_process_log_level())
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)

    resume = training_args.resume_from_checkpoint
    if resume in ("auto", "last"):
        resume = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
        logger.info("Resuming from %s", resume or "scratch (no checkpoint found)")

    # Data: the main process downloads or generates the corpus, the others wait and reuse it.
    with training_args.main_process_first(desc="corpus preparation"):
        rows = load_corpus(data_args)
    splits, folds = split_corpus(rows, data_args)
    label_names = list(CORPUS_INFO[data_args.corpus]["labels"])
    id2label, label2id = label_maps(label_names)

    model, feature_extractor = build_model(model_args, id2label, label2id)
    with training_args.main_process_first(desc="dataset building"):
        data = build_datasets(splits, label2id, feature_extractor, data_args, seed=training_args.seed)

    # We push the output dir ourselves at the end: the Trainer's own push uploads training_args.bin.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    callbacks = []
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience,
                                               training_args.early_stopping_threshold))
    pad_to = data_args.max_duration_seconds if data_args.padding == "max_length" else None
    trainer = SERTrainer(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=AudioCollator(feature_extractor.model_input_names[0], pad_to, feature_extractor.padding_value),
        processing_class=feature_extractor,
        compute_metrics=make_compute_metrics(label_names),
        callbacks=callbacks,
        uses_attention_mask=uses_attention_mask(feature_extractor),
        crop_training_batches=data_args.padding == "crop",
    )

    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()  # the best checkpoint when load_best_model_at_end
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    results, predictions = {}, {}
    for split in (name for name in data if name != "train"):
        results[split], predictions[split] = evaluate_split(trainer, data[split], label_names, split)
    if trainer.is_world_process_zero():
        for split, rows in predictions.items():
            write_predictions_csv(rows, Path(training_args.output_dir) / f"predictions_{split}.csv", data_args.data_dir)
        info = CORPUS_INFO[data_args.corpus]
        card = ModelCardInfo(
            model_id=training_args.hub_model_id or Path(training_args.output_dir).name,
            base_model=model_args.model_name_or_path,
            dataset_name=info["name"],
            dataset_id=info["dataset_id"],
            dataset_license=info["license"],
            label_names=label_names,
            metrics={},
            split_name=f"validation (fold {data_args.fold}: {', '.join(folds[data_args.fold])})",
            split_description=(f"Speaker-independent: {data_args.n_folds} folds of speakers, fold {data_args.fold} "
                               f"held out for validation" + (f", fold {data_args.test_fold} for test" if data_args.test_fold is not None else "")
                               + "; no speaker appears in two splits."),
            command=command,
            hyperparameters=_hyperparameters(model_args, data_args, training_args),
            num_train_examples=len(data["train"]),
            num_eval_examples=len(data["validation"]),
        )
        write_reports(training_args.output_dir, results, label_names, trainer.state.log_history, card)
        print(results_table(results, training_args.output_dir))
        if push_to_hub:
            url = push_output_dir(training_args.output_dir, training_args.hub_model_id or Path(training_args.output_dir).name,
                                  private=bool(training_args.hub_private_repo))
            logger.info("Pushed to %s", url)
    return results


def _hyperparameters(model_args, data_args, training_args):
    return {
        "model": model_args.model_name_or_path or f"{model_args.model_type} (random init)",
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": str(training_args.lr_scheduler_type.value if hasattr(training_args.lr_scheduler_type, "value") else training_args.lr_scheduler_type),
        "warmup_steps": training_args.warmup_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "seed": training_args.seed,
        "max_duration_seconds": data_args.max_duration_seconds,
        "padding": data_args.padding,
        "freeze_feature_encoder": model_args.freeze_feature_encoder,
        "freeze_encoder_layers": model_args.freeze_encoder_layers,
        "freeze_encoder": model_args.freeze_encoder,
        "use_weighted_layer_sum": model_args.use_weighted_layer_sum,
        "metric_for_best_model": training_args.metric_for_best_model,
    }


if __name__ == "__main__":
    main()

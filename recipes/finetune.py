"""Fine-tune a self-supervised speech encoder for speech emotion recognition, speaker-independently.

Usage:
    python recipes/finetune.py recipes/configs/ravdess.yaml [--data_dir DIR] [--output_dir OUT] [--field value ...]
    accelerate launch recipes/finetune.py recipes/configs/ravdess.yaml --data_dir DIR --output_dir OUT

Every field of ModelArguments, DataArguments and TrainingArguments can be set in the YAML or on the
command line (which wins): see `python recipes/finetune.py --help`.
"""

import contextlib
import dataclasses
import json
import logging
import sys
from pathlib import Path

# Run from a checkout without installing. recipes/ itself comes off the path: recipes/evaluate.py would shadow
# the `evaluate` library.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "recipes"]

import datasets
import transformers
from transformers import EarlyStoppingCallback, set_seed

from ser_hf.audio import AudioCollator
from ser_hf.callbacks import PreemptionCallback
from ser_hf.checkpoints import OutputDirLock, check_output_dir, resolve_resume, save_final_model_atomically
from ser_hf.config import parse_config
from ser_hf.data import DATA_ARGS_FILE, build_datasets, class_counts, class_counts_markdown, exclude_bad_audio, prepare_splits
from ser_hf.diagnostics import TrainingDiagnostics
from ser_hf.error_analysis import format_error_analysis, write_error_analysis
from ser_hf.hub import push_output_dir
from ser_hf.imbalance import class_weights
from ser_hf.labels import label_maps
from ser_hf.metrics import make_compute_metrics
from ser_hf.modeling import build_model, uses_attention_mask
from ser_hf.reporting import (
    card_info,
    command_line,
    evaluate_split,
    results_table,
    write_predictions_csv,
    write_reports,
)
from ser_hf.trainer import SERTrainer
from ser_hf.validation import report_markdown

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

    # Only the main process checks and locks the output dir; a dead run's lock is taken over, a live one refused.
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    is_main = training_args.process_index == 0
    with OutputDirLock(training_args.output_dir) if is_main else contextlib.nullcontext():
        if is_main:
            check_output_dir(training_args.output_dir, overwrite=training_args.overwrite_output_dir, resume=bool(resume))
        return _run(model_args, data_args, training_args, resume, command)


def _run(model_args, data_args, training_args, resume, command):
    # Data: the main process downloads or generates the corpus, the others wait and reuse it.
    with training_args.main_process_first(desc="corpus preparation and audio scan"):
        splits, label_names, (split_name, split_protocol) = prepare_splits(data_args)
        splits, data_report = exclude_bad_audio(splits, data_args, training_args.output_dir,
                                                is_main=training_args.process_index == 0)
    counts_table = class_counts_markdown(splits, label_names)
    logger.info("Clips per class and split:\n%s", counts_table)
    if training_args.process_index == 0:
        Path(training_args.output_dir, "class_counts.json").write_text(json.dumps(class_counts(splits, label_names), indent=2))
        # recipes/evaluate.py rebuilds the same splits from it.
        Path(training_args.output_dir, DATA_ARGS_FILE).write_text(json.dumps(dataclasses.asdict(data_args), indent=2))
    id2label, label2id = label_maps(label_names)

    model, feature_extractor = build_model(model_args, id2label, label2id)
    with training_args.main_process_first(desc="dataset building"):
        data = build_datasets(splits, label2id, feature_extractor, data_args)

    # We push the output dir ourselves at the end: the Trainer's own push uploads training_args.bin.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    preemption = PreemptionCallback()
    diagnostics = TrainingDiagnostics(label_names, collapse_evaluations=training_args.diagnostics_collapse_evaluations,
                                      stall_evaluations=training_args.diagnostics_stall_evaluations)
    callbacks = [preemption, diagnostics]
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
        compute_metrics=make_compute_metrics(label_names, on_predictions=diagnostics.record),
        callbacks=callbacks,
        uses_attention_mask=uses_attention_mask(feature_extractor),
        class_weights=class_weights([label2id[r["label"]] for r in splits["train"]], len(label_names),
                                    training_args.class_weighting),
        crop_training_batches=data_args.padding == "crop",
    )

    if resume:
        logger.info("Resuming from %s", resume)
    train_result = trainer.train(resume_from_checkpoint=resume)
    preemption.restore_signal_handlers()
    if preemption.preempted:
        logger.warning("Stopped by SIGTERM after saving a checkpoint: rerun the same command with --resume true")
        sys.exit(143)
    save_final_model_atomically(trainer, training_args.output_dir)  # the best checkpoint when load_best_model_at_end
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    results, predictions = {}, {}
    for split in (name for name in data if name != "train"):
        results[split], predictions[split] = evaluate_split(trainer, data[split], label_names, split)
    if trainer.is_world_process_zero():
        for split, rows in predictions.items():
            write_predictions_csv(rows, Path(training_args.output_dir) / f"predictions_{split}.csv", data_args.data_dir)
            _, analysis = write_error_analysis(rows, label_names, Path(training_args.output_dir) / f"error_analysis_{split}.json",
                                               data_args.data_dir)
            logger.info("%s", format_error_analysis(analysis, split))
        card = card_info(model_args, data_args, training_args, label_names, split_name, split_protocol,
                         num_train=len(data["train"]), num_eval=len(data["validation"]), command=command,
                         data_markdown=f"Clips per class and split:\n\n{counts_table}\n\n{report_markdown(data_report)}")
        write_reports(training_args.output_dir, results, label_names, trainer.state.log_history, card, diagnostics)
        print(results_table(results, training_args.output_dir))
        if push_to_hub:
            url = push_output_dir(training_args.output_dir, training_args.hub_model_id or Path(training_args.output_dir).name,
                                  private=bool(training_args.hub_private_repo))
            logger.info("Pushed to %s", url)
    return results


if __name__ == "__main__":
    main()

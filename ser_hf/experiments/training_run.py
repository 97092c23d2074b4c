"""One training run, from a corpus to a model card: what `ser-hf train` (= recipes/finetune.py) runs.

    run_training(model_args, data_args, training_args, command)

Data (`prepare_corpus`: splits, audio scan, decoded audio) -> model (an encoder and its head; `--init_head_from` a
probe's head) -> the SERTrainer's fine-tuning, or a linear probe on cached features (`--probe`) -> every held-out
split evaluated as the pipeline would (`--temperature_scaling` folded in first) -> predictions, error analyses,
plots and the model card in the output dir (pushed to the Hub when asked). With an unlabeled pool
(`--unlabeled_dir`, `--pseudo_pool_fold`) the run is repeated in pseudo-labelling rounds
(`ser_hf.experiments.pseudo_rounds`). `--task dimensional` regresses arousal, dominance and valence along the same
steps: scored by CCC (`ser_hf.evaluation.dimensional`), reported by `ser_hf.reporting.dimensional_report`.
"""

import dataclasses
import json
import logging
import sys
from pathlib import Path

import datasets
import numpy as np
import transformers
from transformers import EarlyStoppingCallback, set_seed

from ser_hf.data.collator import AudioCollator
from ser_hf.data.dimensions import check_dimensional_data, target_stats_markdown
from ser_hf.data.prepare import DATA_ARGS_FILE, class_counts, class_counts_markdown, prepare_corpus, resolve_data_args
from ser_hf.data.pseudo_pool import pseudo_labelling
from ser_hf.data.scan import report_markdown
from ser_hf.errors import UsageError
from ser_hf.evaluation.dimensional import make_dimensional_compute_metrics
from ser_hf.evaluation.emotion_collapse import add_collapsed_scores
from ser_hf.evaluation.held_out import evaluate_dimensional_split, evaluate_split
from ser_hf.evaluation.intensity import evaluate_intensity
from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.evaluation.probe_analysis import agreement_with_cache, per_layer_scores
from ser_hf.experiments.pseudo_labels import has_rounds_to_resume
from ser_hf.experiments.pseudo_rounds import run_pseudo_rounds
from ser_hf.experiments.temperature_scaling import evaluate_with_temperature
from ser_hf.labels import label_maps
from ser_hf.models.encoders import build_model, check_model_available, check_padding_mode, uses_attention_mask
from ser_hf.models.intensity_head import attach_intensity_head, load_intensity_head
from ser_hf.models.probe_features import probe_cache
from ser_hf.reporting.dimensional_report import (
    dimension_scaling,
    dimensional_results_table,
    write_dimensional_predictions_csv,
    write_dimensional_reports,
)
from ser_hf.reporting.hub import push_output_dir
from ser_hf.reporting.intensity_report import (
    collapsed_emotions_card_section,
    collapsed_emotions_summary_lines,
    intensity_card_section,
    intensity_summary_lines,
)
from ser_hf.reporting.probe_report import probe_card, write_probe_reports
from ser_hf.reporting.results import card_info, headline_split, results_table, write_reports, write_split_outputs
from ser_hf.storage import remove_stale_temporaries, write_text_atomic
from ser_hf.training.callbacks import PreemptionCallback
from ser_hf.training.checkpoints import resolve_resume
from ser_hf.training.diagnostics import TrainingDiagnostics, find_diagnostics
from ser_hf.training.disk_space import check_room_for_checkpoints, planned_saves
from ser_hf.training.final_save import save_final_model_atomically
from ser_hf.training.imbalance import class_weights
from ser_hf.training.multitask import MultitaskTrainer, check_multitask_data, mark_intensity
from ser_hf.training.output_dir import OutputDirLock, check_output_dir
from ser_hf.training.precision import keep_trained_convolutions_fp32
from ser_hf.training.probe import fit_probe, head_model_args, load_head, probe_settings
from ser_hf.training.trainer import SERTrainer

logger = logging.getLogger("ser_hf")


def run_training(model_args, data_args, training_args, command):
    """Check the run's settings, then train, evaluate and report one speaker fold (see the module docstring).

    Args:
        model_args, data_args, training_args: the parsed recipe (`ser_hf.config.parse_config`).
        command: the command line the model card shows (`ser_hf.reporting.command.command_line`: secrets redacted).

    Returns:
        {split: SER metrics} of the held-out splits.

    Raises:
        UsageError: a setting that cannot work, found before any data work (the corpus needs --data_dir, a head
            that does not fit, a finished run in the output dir, ...).
    """
    data_args = resolve_data_args(data_args)
    if training_args.task == "multitask":
        check_multitask_data(data_args)
    elif training_args.task == "dimensional":
        check_dimensional_data(data_args)
    check_model_available(model_args)
    model_args = head_model_args(model_args, data_args, training_args)  # --probe / --init_head_from, checked now
    check_padding_mode(model_args, data_args)  # reads the model's config.json: still before any data work
    set_seed(training_args.seed)

    # Our own messages (splits, counts, skipped files) on the main process only; libraries at the Trainer's level.
    # transformers' own bars ("Writing model shards" at every save, "Loading weights") add nothing to the training
    # bar. All of it is put back as it was when the run ends.
    ours, saved_level = logging.getLogger("ser_hf"), logging.getLogger("ser_hf").level
    if not training_args.should_log:
        ours.setLevel(logging.WARNING)
    verbosity = datasets.utils.logging.get_verbosity(), transformers.utils.logging.get_verbosity()
    datasets.utils.logging.set_verbosity(training_args.get_process_log_level())
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        return _locked_run(model_args, data_args, training_args, command)
    finally:
        if bars_were_on:
            transformers.utils.logging.enable_progress_bar()
        datasets.utils.logging.set_verbosity(verbosity[0])
        transformers.utils.logging.set_verbosity(verbosity[1])
        ours.setLevel(saved_level)


def _locked_run(model_args, data_args, training_args, command):
    # Only the main process checks and locks the output dir; a dead run's lock is taken over, a live one refused.
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    is_main = training_args.process_index == 0
    output_dir = Path(training_args.output_dir)
    created = not output_dir.exists()
    try:
        with OutputDirLock(output_dir, enabled=is_main):
            if is_main:
                check_output_dir(output_dir, overwrite=training_args.overwrite_output_dir, resume=bool(resume))
                _check_unfinished_rounds(output_dir, data_args, training_args)
                remove_stale_temporaries(output_dir)  # of a run killed while writing a report
            if pseudo_labelling(data_args):  # round 0, then rounds with the pool's confident pseudo-labels
                return run_pseudo_rounds(_run, model_args, data_args, training_args, resume, command)
            return _run(model_args, data_args, training_args, resume, command)
    except BaseException:
        # A run that failed before writing anything leaves no empty output dir behind to puzzle over.
        if created and is_main and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise


def _check_unfinished_rounds(output_dir, data_args, training_args):
    """A pseudo-labelled run's earlier rounds are hours of work: a rerun without --resume is refused, not restarted."""
    asked = training_args.resume_from_checkpoint or training_args.overwrite_output_dir
    if pseudo_labelling(data_args) and not asked and has_rounds_to_resume(output_dir):
        raise UsageError(f"{output_dir} holds the rounds of an interrupted pseudo-labelled run "
                         f"({', '.join(sorted(p.name for p in output_dir.glob('pseudo_round_*')))}): rerun with "
                         "--resume true to continue it (finished rounds are reused), --overwrite_output_dir true to "
                         "start over, or choose another --output_dir.")


def _run(model_args, data_args, training_args, resume, command, pseudo=None):
    prepared, data_markdown = _prepare_data(data_args, training_args)
    splits = prepared.splits
    if pseudo is not None:  # a pseudo-labelling round (experiments/pseudo_rounds.py): confident pool clips join training
        splits = {**splits, "train": splits["train"] + pseudo.rows}
    id2label, label2id = label_maps(prepared.label_names)  # --task dimensional: DIMENSIONS, one output each
    dimensional = training_args.task == "dimensional"
    model, feature_extractor = build_model(model_args, id2label, label2id,
                                           problem_type="regression" if dimensional else None)
    if model_args.init_head_from:  # LP-FT: fine-tuning starts from a linear probe's head
        load_head(model, model_args.init_head_from)
    if training_args.bf16 and training_args.device.type == "cpu":
        keep_trained_convolutions_fp32(model)
    intensity_names = None
    if training_args.task == "multitask":  # an intensity head beside the emotion head (ser_hf/training/multitask.py)
        splits, intensity_names = mark_intensity(splits, data_args.corpus)
        attach_intensity_head(model, intensity_names)
    data = prepared.datasets(label2id, feature_extractor, data_args, splits)

    # We push the output dir ourselves at the end: the Trainer's own push uploads training_args.bin.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    trainer, preemption = _build_trainer(model, feature_extractor, data, splits, prepared.label_names, data_args,
                                         training_args)

    probe = None
    if training_args.probe:  # a linear probe: no Trainer epochs; the head trains on the encoder's cached features
        probe = _fit_probe(trainer, feature_extractor, data, prepared.load_audio, prepared.label_names, model_args, data_args,
                           training_args)
    else:
        _fine_tune(trainer, preemption, resume, training_args)

    # ---- Evaluate every held-out split as the pipeline would, then report (main process) ----
    if dimensional:  # a regression: its values as the pipeline gives them, CCC beside the training mean's error
        return _evaluate_and_report_dimensional(trainer, data, prepared, model_args, data_args, training_args,
                                                command, data_markdown, push_to_hub)
    results, predictions = {}, {}
    if training_args.temperature_scaling:  # fitted on validation, folded into the saved model, evaluated again
        results, predictions, _ = evaluate_with_temperature(trainer, data, prepared.label_names,
                                                            training_args.output_dir)
    for split in (name for name in data if name != "train" and name not in results):
        results[split], predictions[split] = evaluate_split(trainer, data[split], prepared.label_names, split)
    if intensity_names is not None:  # the saved head, on the same inputs as the emotion scores
        for split, metrics in evaluate_intensity(trainer, load_intensity_head(training_args.output_dir), data).items():
            results[split]["intensity"] = metrics
    add_collapsed_scores(results, predictions, data_args.corpus, data_args.labels)  # --labels 21 / 15: as emotions too
    if trainer.is_world_process_zero():
        _report(trainer, results, predictions, prepared, model_args, data_args, training_args, command,
                data_markdown, num_train=len(data["train"]), num_eval={s: len(data[s]) for s in results}, probe=probe,
                pseudo=pseudo)
        _push(training_args, push_to_hub)
    return results


def _push(training_args, push_to_hub):
    if push_to_hub:
        repo = training_args.hub_model_id or Path(training_args.output_dir).name
        url = push_output_dir(training_args.output_dir, repo, private=bool(training_args.hub_private_repo),
                              token=training_args.push_token)
        logger.info("Pushed to %s", url)


def _evaluate_and_report_dimensional(trainer, data, prepared, model_args, data_args, training_args, command,
                                     data_markdown, push_to_hub):
    """--task dimensional: every held-out split predicted as the pipeline would, then its reports (main process).

    Returns:
        {split: `ser_hf.evaluation.dimensional.compute_dimensional_metrics`}
    """
    train_mean = _train_mean(data)
    results, predictions = {}, {}
    for split in (name for name in data if name != "train"):
        results[split], predictions[split] = evaluate_dimensional_split(trainer, data[split], prepared.label_names,
                                                                        split, train_mean)
    if trainer.is_world_process_zero():
        output_dir = Path(training_args.output_dir)
        for split, rows in predictions.items():
            write_dimensional_predictions_csv(rows, output_dir / f"predictions_{split}.csv", data_args.data_dir,
                                              prepared.label_names)
        headline = headline_split(results)
        card = card_info(model_args, data_args, training_args, prepared, num_train=len(data["train"]),
                         num_eval=len(data[headline]), command=command, data_markdown=data_markdown,
                         headline=headline)
        card.task, card.dimension_scaling = "dimensional", dimension_scaling(data_args)
        card.hyperparameters["dimensional_loss"] = training_args.dimensional_loss
        write_dimensional_reports(output_dir, results, predictions, trainer.state.log_history, card,
                                  saved_step=_saved_step(trainer))
        print(dimensional_results_table(results, output_dir))
        _push(training_args, push_to_hub)
    return results


def _train_mean(data):
    """The training clips' mean targets: the constant the dimensional baseline predicts."""
    return np.asarray(data["train"].with_format(None)["dimensions"], dtype=np.float64).mean(axis=0).tolist()


def _fine_tune(trainer, preemption, resume, training_args):
    """Train, save the final model (the best checkpoint with load_best_model_at_end) and the Trainer's state."""
    # ---- Train (a SIGTERM or Ctrl-C saves a checkpoint and exits; --resume true continues from it) ----
    if resume:
        logger.info("Resuming from %s", resume)
    saves = planned_saves(training_args, len(trainer.train_dataset), training_args.world_size)
    check_room_for_checkpoints(trainer.model, training_args, saves, training_args.output_dir)
    try:
        train_result = trainer.train(resume_from_checkpoint=resume)
    finally:
        preemption.restore_signal_handlers()
    if preemption.preempted:
        logger.warning("Stopped by %s after saving checkpoint-%d: rerun the same command with --resume true to "
                       "continue", preemption.stopped_by.name, trainer.state.global_step)
        sys.exit(preemption.exit_code)
    _log_early_stop(trainer)
    save_final_model_atomically(trainer, training_args.output_dir)  # the best checkpoint when load_best_model_at_end
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()


def _fit_probe(trainer, feature_extractor, data, load_audio, label_names, model_args, data_args, training_args):
    """--probe: cache the frozen encoder's per-layer means, train the head on them, save the model (and layers)."""
    model = trainer.model
    cache = probe_cache(model_args, model, feature_extractor, data_args, training_args.output_dir)
    weights = class_weights(data["train"].with_format(None)["label"], len(label_names), training_args.class_weighting)
    settings, compute_metrics = probe_settings(training_args, weights), make_compute_metrics(label_names)
    probe = fit_probe(model, feature_extractor, cache, data, load_audio, settings, compute_metrics)
    if training_args.probe_layer_analysis:
        probe.layers = per_layer_scores(probe.result.initial_head, model.config.model_type, probe.features,
                                        probe.labels, label_names, settings, compute_metrics)
    trainer.state.log_history = probe.result.log_history  # the training-curves plot shows the probe's epochs
    save_final_model_atomically(trainer, training_args.output_dir)
    return probe


def _prepare_data(data_args, training_args):
    """`prepare_corpus` (the main process first; the others reuse its corpus, scan and cache), with the class
    counts and data_args.json written to the output dir.

    Returns:
        (PreparedData, the data section of the model card)
    """
    is_main = training_args.process_index == 0
    with training_args.main_process_first(desc="corpus preparation, audio scan and decoding"):
        prepared = prepare_corpus(data_args, training_args.output_dir, is_main=is_main, task=training_args.task)
    if is_main:  # `ser-hf evaluate` rebuilds the same splits from it.
        saved = json.dumps(dataclasses.asdict(data_args), indent=2)
        write_text_atomic(Path(training_args.output_dir) / DATA_ARGS_FILE, saved)
    if training_args.task == "dimensional":  # no classes to count: each target's spread per split instead
        table = target_stats_markdown(prepared.splits)
        logger.info("Targets per split (0-1, mean +- std):\n%s", table)
        return prepared, (f"Targets per split (0-1, mean +- std):\n\n{table}\n\n"
                          f"{report_markdown(prepared.scan_report)}")
    counts_table = class_counts_markdown(prepared.splits, prepared.label_names)
    logger.info("Clips per class and split:\n%s", counts_table)
    if is_main:
        counts = class_counts(prepared.splits, prepared.label_names)
        write_text_atomic(Path(training_args.output_dir) / "class_counts.json", json.dumps(counts, indent=2))
    return prepared, f"Clips per class and split:\n\n{counts_table}\n\n{report_markdown(prepared.scan_report)}"


def _build_trainer(model, feature_extractor, data, splits, label_names, data_args, training_args):
    """The SERTrainer with our callbacks: pre-emption, diagnostics and (optionally) early stopping.

    A --task dimensional run has no class histograms to watch (no diagnostics callback), no class weights, and its
    compute_metrics gives CCC, Pearson's r and MSE (`make_dimensional_compute_metrics`).
    """
    preemption = PreemptionCallback()
    dimensional = training_args.task == "dimensional"
    callbacks = [preemption] if dimensional else [
        preemption, TrainingDiagnostics(label_names, collapse_evaluations=training_args.diagnostics_collapse_evaluations,
                                        stall_evaluations=training_args.diagnostics_stall_evaluations)]
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience,
                                               training_args.early_stopping_threshold))
    label2id = {name: i for i, name in enumerate(label_names)}
    pad_to = data_args.max_duration_seconds if data_args.padding == "max_length" else None
    multitask = training_args.task == "multitask"
    trainer_class = MultitaskTrainer if multitask else SERTrainer
    extra = {"intensity_loss_weight": training_args.intensity_loss_weight} if multitask else {}
    if dimensional:
        compute_metrics, weights = make_dimensional_compute_metrics(label_names), None
    else:
        # Late lookup: a resume replaces the callback with the one restored from the checkpoint.
        compute_metrics = make_compute_metrics(label_names,
                                               on_predictions=lambda *p: find_diagnostics(trainer).record(*p))
        weights = class_weights([label2id[r["label"]] for r in splits["train"]], len(label_names),
                                training_args.class_weighting)
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=AudioCollator(feature_extractor.model_input_names[0], pad_to, feature_extractor.padding_value),
        processing_class=feature_extractor,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        uses_attention_mask=uses_attention_mask(feature_extractor),
        class_weights=weights,
        crop_training_batches=data_args.padding == "crop",
        **extra,
    )
    return trainer, preemption


def _log_early_stop(trainer):
    """Say when early stopping ended training before its planned length, and why."""
    stopper = next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, EarlyStoppingCallback)), None)
    if stopper is None or stopper.early_stopping_patience_counter < stopper.early_stopping_patience:
        return
    state, metric = trainer.state, trainer.args.metric_for_best_model
    logger.info("Early stopping at step %d of %d: %s did not improve for %d evaluations (best %.4f, %s)",
                state.global_step, state.max_steps, metric, stopper.early_stopping_patience, state.best_metric,
                Path(state.best_model_checkpoint or "").name or "no checkpoint")


def _saved_step(trainer):
    """The step of the model that was saved: the best checkpoint's with load_best_model_at_end, else the last."""
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best:
        return int(Path(best).name.rsplit("-", 1)[-1])
    return trainer.state.global_step


def _report(trainer, results, predictions, prepared, model_args, data_args, training_args, command, data_markdown,
            num_train, num_eval, probe=None, pseudo=None):
    """Predictions CSVs, error analyses, results, plots and the model card in the output dir (and a probe's files)."""
    for split, rows in predictions.items():
        logger.info("%s", write_split_outputs(rows, prepared.label_names, split, training_args.output_dir,
                                              data_args.data_dir))
    headline = headline_split(results)
    card = card_info(model_args, data_args, training_args, prepared, num_train=num_train,
                     num_eval=num_eval[headline], command=command, data_markdown=data_markdown, headline=headline)
    diagnostics = find_diagnostics(trainer)
    if probe is not None:  # a linear probe: its own files, and the card says only the head was trained
        summary = {**probe.summary(), "agreement": {
            split: agreement_with_cache(probe.result.head, probe.features[split], rows, prepared.label_names)
            for split, rows in predictions.items()}}
        write_probe_reports(training_args.output_dir, summary, prepared.label_names)
        card, diagnostics = probe_card(card, summary, prepared.split_names, headline), None
    for section in (intensity_card_section(results, headline),  # --task multitask
                    collapsed_emotions_card_section(results, headline)):  # emotion x intensity labels
        if section:
            card.sections.append(section)
    if pseudo is not None and pseudo.card_section is not None:  # --unlabeled_dir / --pseudo_pool_fold
        card.sections.append(pseudo.card_section(results))
    write_reports(training_args.output_dir, results, prepared.label_names, trainer.state.log_history, card,
                  diagnostics, saved_step=_saved_step(trainer))
    print("\n".join([results_table(results, training_args.output_dir), *intensity_summary_lines(results),
                     *collapsed_emotions_summary_lines(results)]))



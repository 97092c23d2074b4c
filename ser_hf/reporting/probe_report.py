"""What a linear probe (`--probe true`) adds to a run's outputs: probe_results.json, the per-layer table and plot,
and the model card's account of what was trained."""

import json
from pathlib import Path

from ser_hf.reporting.plots import plot_layer_scores
from ser_hf.storage import write_text_atomic
from ser_hf.training.probe import PROBE_RESULTS_FILE

PROBE_LAYERS_STEM = "probe_layers"

# TrainingArguments fields a probe does not use: they would mislead on its card.
_NOT_APPLICABLE = ("learning_rate", "lr_scheduler_type", "warmup_steps", "per_device_train_batch_size",
                   "gradient_accumulation_steps", "num_train_epochs", "max_steps", "max_duration_seconds", "padding",
                   "freeze_feature_encoder", "freeze_encoder_layers")


def _pct(value):
    return f"{100 * value:.1f} %"


def layer_table_markdown(rows):
    """The per-layer analysis as a markdown table: UA (and WA) per held-out split; the best validation UA in bold."""
    splits = [key.removesuffix("_ua") for key in rows[0] if key.endswith("_ua")]
    best = max(range(len(rows)), key=lambda i: rows[i].get("validation_ua", 0.0))
    lines = ["| hidden state | what | " + " | ".join(f"{s} UA | {s} WA" for s in splits) + " | best epoch |",
             "|---|---|" + "---|---|" * len(splits) + "---|"]
    for i, row in enumerate(rows):
        cells = []
        for split in splits:
            ua = _pct(row[f"{split}_ua"])
            cells += [f"**{ua}**" if i == best and split == "validation" else ua, _pct(row[f"{split}_wa"])]
        lines.append(f"| {row['layer']} | {row['name']} | " + " | ".join(cells) + f" | {row['best_epoch']} |")
    return "\n".join(lines)


def write_probe_reports(output_dir, summary, label_names):
    """probe_results.json, and with a per-layer analysis probe_layers.md, .json and .png, in the output dir.

    Args:
        output_dir: the run's output dir.
        summary: `FittedProbe.summary()` plus the command's additions (e.g. "agreement").
        label_names: names in id order (the plot's chance line is 1 / their number).

    Returns:
        The names of the files written.
    """
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / PROBE_RESULTS_FILE, json.dumps(summary, indent=2, default=str))
    written = [PROBE_RESULTS_FILE]
    rows = summary.get("layers")
    if rows:
        write_text_atomic(output_dir / f"{PROBE_LAYERS_STEM}.json", json.dumps(rows, indent=2))
        write_text_atomic(
            output_dir / f"{PROBE_LAYERS_STEM}.md",
            "UA of a probe on one hidden state alone (its epoch chosen on the validation split, as the full "
            "probe's is).\n\n" + layer_table_markdown(rows) + "\n")
        plot_layer_scores(rows, output_dir / f"{PROBE_LAYERS_STEM}.png", chance=1 / len(label_names))
        written += [f"{PROBE_LAYERS_STEM}.{ext}" for ext in ("json", "md", "png")]
    return written


def _section(summary):
    cache, settings = summary["cache"], summary["settings"]
    lines = [
        "## Linear probe", "",
        "The encoder is frozen. Each clip went through it once, whole (as the pipeline runs it), and the time mean "
        "of every hidden state was cached; the head (softmax layer weights, projector, classifier) trained on "
        "those means, which gives the same logits as the full model on the clip (the head is linear up to the "
        "classifier). No crops and no augmentation apply in training.", "",
        f"- Head training: AdamW, learning rate {settings['learning_rate']}, batches of {settings['batch_size']}, "
        f"weight decay {settings['weight_decay']}; best {settings['metric']} on the validation split at epoch "
        f"{summary['best_epoch']} of {summary['epochs_run']} run (at most {settings['epochs']}, patience "
        f"{settings['patience']}); {1000 * summary['seconds_per_epoch']:.1f} ms per epoch.",
        f"- Encoder features: {cache['clips']} clips, {cache['computed']} computed by this run "
        f"({cache['seconds']:.0f} s), the others read from the cache.",
    ]
    for split, agree in (summary.get("agreement") or {}).items():
        lines.append(f"- The head on the cached means and the full model (as reported above) predict the same "
                     f"label for {agree['same_prediction']} of {agree['clips']} {split} clips.")
    if summary.get("layers"):
        lines += ["", "Which layer carries the emotion: a probe on each hidden state alone "
                  f"(`{PROBE_LAYERS_STEM}.md`, `.json`, `.png`).", "", layer_table_markdown(summary["layers"])]
    return "\n".join(lines)


def probe_card(card, summary, split_names, headline):
    """Turn a run's `ModelCardInfo` into a linear probe's: what was trained, the probe's settings, its selection.

    Args:
        card: from `ser_hf.reporting.results.card_info`.
        summary: as for `write_probe_reports`.
        split_names: `PreparedSplits.split_names`.
        headline: the split the card reports.

    Returns:
        The card, changed in place.
    """
    card.frozen_encoder = True
    settings = summary["settings"]
    card.hyperparameters = {k: v for k, v in card.hyperparameters.items() if k not in _NOT_APPLICABLE}
    card.hyperparameters.update({
        "probe": True, "probe_epochs": settings["epochs"], "probe_learning_rate": settings["learning_rate"],
        "probe_batch_size": settings["batch_size"], "probe_patience": settings["patience"],
        "weight_decay": settings["weight_decay"], "best_epoch": summary["best_epoch"],
    })
    selection = (f"The head is the one of the epoch with the best {settings['metric']} on "
                 f"{split_names['validation']}")
    if headline == "test":
        selection += f". The scores above are on {split_names['test']}, which took no part in training or selection."
    else:
        selection += (". The scores above are on that same split, so they are optimistic; a fold held out with "
                      "--test_fold takes no part in the choice and gives an unbiased number.")
    card.selection = selection
    card.sections.append(_section(summary))
    card.tags = [*card.tags, "linear-probe"]
    return card

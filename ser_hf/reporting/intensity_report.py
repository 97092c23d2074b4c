"""Intensity on the model card and at the end of a run: the intensity head's scores (`--task multitask`), and the
scores of an emotion x intensity model (CREMA-D --labels 21, RAVDESS --labels 15) read as bare emotions."""


def _pct(value):
    return f"{100 * value:.1f} %"


def intensity_card_section(results, headline):
    """A model-card section with the intensity head's UA/WA/macro-F1 per held-out split, beside its baselines.

    Args:
        results: {split: metrics}, where a multitask run's splits carry "intensity" (`evaluate_intensity`).
        headline: the split the card reports (`headline_split`), listed first.

    Returns:
        Markdown with its own heading, or "" when no split has intensity scores.
    """
    splits = sorted((s for s, m in results.items() if m.get("intensity")), key=lambda s: s != headline)
    if not splits:
        return ""
    names = results[splits[0]]["intensity"]["label_names"]
    lines = [
        "## Intensity head",
        "",
        f"Trained beside the emotion head (`--task multitask`) on the same pooled representation; intensities "
        f"{', '.join(names)}. Scored on the clips that have an intensity: clips without one (CREMA-D's XX, "
        "neutral) were left out of its loss and are left out here. The head is saved beside the model "
        "(`intensity_head.safetensors`, `intensity_config.json`); `pipeline()` returns emotions only, "
        "`ser-hf predict` adds an intensity column.",
        "",
        "| split | intensity UA | WA | macro-F1 | chance UA | majority WA | clips scored | clips without intensity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in splits:
        m = results[split]["intensity"]
        lines.append(f"| {split} | {_pct(m['ua'])} | {_pct(m['wa'])} | {_pct(m['macro_f1'])} | {_pct(m['chance_ua'])} "
                     f"| {_pct(m['majority_baseline_wa'])} | {m['num_examples']} | {m['num_without_intensity']} |")
    return "\n".join(lines)


def intensity_summary_lines(results):
    """Plain-text lines for the end of a run: the intensity UA of each split beside chance."""
    return [f"intensity ({split}): UA {m['intensity']['ua']:.3f} (chance {m['intensity']['chance_ua']:.3f}), "
            f"WA {m['intensity']['wa']:.3f} on {m['intensity']['num_examples']} clips"
            for split, m in results.items() if m.get("intensity")]


def collapsed_emotions_card_section(results, headline):
    """A model-card section with the emotion x intensity model's predictions scored as bare emotions.

    Args:
        results: {split: metrics}, where the splits of a run on emotion x intensity labels carry "emotions"
            (`ser_hf.evaluation.emotion_collapse.collapsed_metrics`).
        headline: the split the card reports, listed first.

    Returns:
        Markdown with its own heading, or "" when no split has such scores.
    """
    splits = sorted((s for s, m in results.items() if m.get("emotions")), key=lambda s: s != headline)
    if not splits:
        return ""
    lines = [
        "## Scored as emotions",
        "",
        "The labels are emotion x intensity. Read as its emotion alone (a predicted `angry_hi` for a true "
        "`angry_lo` counts as right), the model scores as below: the figure that stands beside an emotion-only or "
        "`--task multitask` model on the same speakers.",
        "",
        "| split | emotion UA | WA | macro-F1 | chance UA | majority WA | clips |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in splits:
        m = results[split]["emotions"]
        lines.append(f"| {split} | {_pct(m['ua'])} | {_pct(m['wa'])} | {_pct(m['macro_f1'])} | {_pct(m['chance_ua'])} "
                     f"| {_pct(m['majority_baseline_wa'])} | {m['num_examples']} |")
    return "\n".join(lines)


def collapsed_emotions_summary_lines(results):
    """Plain-text lines for the end of a run: the emotion x intensity model's UA on bare emotions, beside chance."""
    return [f"scored as emotions ({split}): UA {m['emotions']['ua']:.3f} (chance {m['emotions']['chance_ua']:.3f}), "
            f"WA {m['emotions']['wa']:.3f} on {m['emotions']['num_examples']} clips"
            for split, m in results.items() if m.get("emotions")]

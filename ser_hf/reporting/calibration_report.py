"""The model card's calibration section: ECE, confidence against accuracy, and temperature scaling when applied."""


def _pct(value):
    return f"{100 * value:.1f} %"


def calibration_section(results, headline, split_label=None):
    """Markdown for the card: how far the pipeline's top score is from the accuracy it delivers.

    Args:
        results: {split: metrics with `ece` and `calibration`, and with `temperature`, `temperature_fitted_on` and
            `ece_before_temperature` when temperature scaling was applied}.
        headline: the split the card reports.
        split_label: how the card names that split (default: its key).

    Returns:
        The section text, or "" when the metrics carry no calibration.
    """
    m = results[headline]
    if "ece" not in m or "calibration" not in m:
        return ""
    cal = m["calibration"]
    gap = cal["mean_confidence"] - cal["accuracy"]
    lean = "over-confident" if gap > 0 else "under-confident"
    lines = ["## Calibration", "",
             f"Expected calibration error (ECE: |accuracy - mean top score| in {cal['n_bins']} equal-width bins of the "
             f"top score, weighted by clips) on {split_label or headline}: **{_pct(m['ece'])}**. The mean top score is "
             f"{_pct(cal['mean_confidence'])} against an accuracy of {_pct(cal['accuracy'])} "
             f"({lean} by {100 * abs(gap):.1f} points on average). See the reliability diagram below.", ""]
    if "temperature" in m:
        fitted = m["temperature_fitted_on"]
        lines += [f"Temperature scaling: the classifier layer was divided by T = {m['temperature']:.3f}, fitted on the "
                  f"{fitted} clips (minimum negative log-likelihood), so `pipeline()` scores are softmax(logits / T) "
                  "with no custom code (`calibration_temperature` in config.json). Labels, UA, WA and macro-F1 are unchanged.", "",
                  "| split | ECE before | ECE after |", "|---|---|---|"]
        for split, metrics in results.items():
            note = " (T was fitted on these clips: optimistic)" if split == fitted else ""
            lines.append(f"| {split}{note} | {_pct(metrics['ece_before_temperature'])} | {_pct(metrics['ece'])} |")
        lines.append("")
    return "\n".join(lines)

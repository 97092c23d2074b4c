"""Error analysis of per-clip predictions: most confused pairs, scores per speaker, confidently wrong clips.

Input rows are what `ser_hf.reporting.results.evaluate_split` returns and `predictions_<split>.csv` holds: path,
speaker, true, predicted, confidence. Used after every training run and by `recipes/evaluate_model.py`.
"""

from collections import Counter, defaultdict

import numpy as np

from ser_hf.evaluation.metrics import compute_ser_metrics


def confused_pairs(rows, top=10):
    """The most frequent (true -> predicted) mistakes.

    Args:
        rows: per-clip predictions with `true` and `predicted` names.
        top: how many pairs to return.

    Returns:
        list of {true, predicted, count, share_of_true}, most frequent first (ties by name), where
        share_of_true is the count over the clips of that true class.
    """
    per_true = Counter(row["true"] for row in rows)
    mistakes = Counter((row["true"], row["predicted"]) for row in rows if row["true"] != row["predicted"])
    ordered = sorted(mistakes.items(), key=lambda item: (-item[1], item[0]))
    return [{"true": t, "predicted": p, "count": n, "share_of_true": round(n / per_true[t], 4)}
            for (t, p), n in ordered[:top]]


def per_speaker_scores(rows, label_names):
    """UA / WA per held-out speaker: a fold's mean can hide one speaker the model cannot read at all.

    Returns:
        {speaker: {"ua", "wa", "clips"}}, speakers in sorted order.
    """
    label_id = {name: i for i, name in enumerate(label_names)}
    by_speaker = defaultdict(list)
    for row in rows:
        by_speaker[row.get("speaker") or ""].append(row)
    scores = {}
    for speaker in sorted(by_speaker):
        clips = by_speaker[speaker]
        metrics = compute_ser_metrics([label_id[r["predicted"]] for r in clips], [label_id[r["true"]] for r in clips],
                                      label_names)
        scores[speaker] = {"ua": round(metrics["ua"], 4), "wa": round(metrics["wa"], 4), "clips": len(clips)}
    return scores


def confidently_wrong(rows, top=10):
    """The wrong predictions the model was surest of: the first files to listen to (label noise, odd audio)."""
    wrong = [row for row in rows if row["true"] != row["predicted"]]
    return sorted(wrong, key=lambda row: -float(row["confidence"]))[:top]


def error_analysis(rows, label_names, top=10):
    """Confused pairs, per-speaker scores and confidently wrong clips of one split.

    Args:
        rows: per-clip predictions (path, speaker, true, predicted, confidence).
        label_names: class names in id order.
        top: length of the pair and clip lists.
    """
    correct = np.mean([row["true"] == row["predicted"] for row in rows]) if rows else float("nan")
    return {"clips": len(rows), "wa": float(correct), "most_confused_pairs": confused_pairs(rows, top),
            "per_speaker": per_speaker_scores(rows, label_names), "confidently_wrong": confidently_wrong(rows, top)}



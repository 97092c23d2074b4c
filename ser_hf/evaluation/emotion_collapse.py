"""Emotion x intensity labels scored as emotions, to compare flat and multi-task models on one footing.

A 21-label CREMA-D model ("angry_hi", ..., "neutral_xx") or a RAVDESS/demo model on emotion_intensity labels
("happy_strong") predicts an emotion too: its label's emotion. Scoring those collapsed predictions on the emotions
gives the UA that stands beside a 6- or 8-emotion model and a `--task multitask` model on the same folds.
A run on such labels records these scores under "emotions" in ser_results.json and on its card; a cross-validation
reports their mean +- std over folds.
"""

from ser_hf.corpora import get_corpus
from ser_hf.evaluation.metrics import compute_ser_metrics


def emotion_of(label, emotions):
    """The emotion of a label: the label itself when it is one, else the emotion it starts with ("angry_hi").

    Raises:
        ValueError: the label starts with none of `emotions`.
    """
    if label in emotions:
        return label
    for emotion in sorted(emotions, key=len, reverse=True):  # the longest match: no emotion is a prefix of another
        if label.startswith(f"{emotion}_"):
            return emotion
    raise ValueError(f"label {label!r} names none of the emotions {list(emotions)}")


def collapsed_metrics(true, predicted, emotions):
    """SER metrics (UA, WA, macro-F1, baselines) of label predictions collapsed to emotions.

    Args:
        true, predicted: label names per clip (emotion x intensity or plain emotions).
        emotions: the emotion names, in the order the confusion matrix takes.

    Returns:
        `compute_ser_metrics` output plus num_examples and label_names (the emotions).
    """
    emotions = list(emotions)
    ids = {name: i for i, name in enumerate(emotions)}
    metrics = compute_ser_metrics([ids[emotion_of(p, emotions)] for p in predicted],
                                  [ids[emotion_of(t, emotions)] for t in true], emotions)
    metrics["num_examples"] = len(true)
    metrics["label_names"] = emotions
    return metrics


def add_collapsed_scores(results, predictions, corpus, label_set):
    """Add "emotions" (`collapsed_metrics`) to each split's results when the run's labels are emotion x intensity.

    Args:
        results: {split: metrics}, changed in place.
        predictions: {split: per-clip rows with "true" and "predicted" label names}.
        corpus, label_set: the run's `DataArguments.corpus` and `.labels` (CREMA-D 21 and RAVDESS/demo 15 are
            emotion x intensity; any other set is left as it is).
    """
    emotions = get_corpus(corpus).emotions(label_set)
    for split, rows in predictions.items() if emotions else ():
        results[split]["emotions"] = collapsed_metrics([r["true"] for r in rows], [r["predicted"] for r in rows],
                                                       emotions)

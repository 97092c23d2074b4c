"""Label sets. Their order is fixed by code so that two runs always agree on label ids."""

# The dimensional ratings (`--task dimensional`), in id order (a regression model's id2label).
DIMENSIONS = ("arousal", "dominance", "valence")

# RAVDESS emotion codes 01..08, in code order.
RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def label_maps(labels):
    """Build the `id2label` / `label2id` pair that config.json stores.

    Args:
        labels: label names in id order.

    Returns:
        (id2label, label2id) with int ids and str names.
    """
    id2label = {i: name for i, name in enumerate(labels)}
    label2id = {name: i for i, name in enumerate(labels)}
    return id2label, label2id

"""The intensity of a `--task multitask` model's prediction for a file (predict, the app).

`pipeline()` returns emotions only, so each file's 16 kHz samples (the same windows `classify_file` uses for long
files) go through the pipeline's model and feature extractor a second time, and the intensity head reads the
vector the emotion classifier receives (`ser_hf.models.intensity_head.pooled_capture`).
"""

import numpy as np
import torch

from ser_hf.data.audio import SAMPLE_RATE, audio_duration_seconds
from ser_hf.inference.classify import is_no_speech
from ser_hf.inference.windows import file_windows
from ser_hf.models.intensity_head import pooled_capture


def file_intensity(classifier, head, path, chunk_seconds=10.0, chunk_overlap=5.0):
    """Intensity probabilities of one audio file, averaged over the same windows `classify_file` uses.

    Args:
        classifier: the audio-classification pipeline (its model and feature extractor are used).
        head: the model's `IntensityHead`.
        path: an audio file that `classify_file` classified without error.
        chunk_seconds, chunk_overlap: as in `classify_file`.

    Returns:
        {intensity name: probability}.
    """
    model, extractor = classifier.model, classifier.feature_extractor
    head = head.to(model.device).eval()
    probabilities = []
    total = audio_duration_seconds(path)  # the header, as `classify_file` decides between one pass and windows
    with torch.inference_mode():
        for _, samples in file_windows(path, total, chunk_seconds, chunk_overlap):
            inputs = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            inputs = {k: v.to(model.device) for k, v in inputs.items()}
            with pooled_capture(model) as pooled:
                model(**inputs)
            probabilities.append(head(torch.cat(pooled).float()).softmax(dim=-1)[0].cpu().numpy())
    mean = np.mean(probabilities, axis=0)
    return {name: float(p) for name, p in zip(head.names, mean)}


def add_intensity_to_rows(classifier, head, rows, chunk_seconds=10.0, chunk_overlap=5.0):
    """Add "intensity" and "intensity_score" to each classified row of `classify_files` (errors and files without
    speech stay as they are: no emotion, no intensity).

    Returns:
        The rows (changed in place).
    """
    for row in rows:
        if row.get("error") or is_no_speech(row):
            row["intensity"], row["intensity_score"] = None, None
            continue
        scores = file_intensity(classifier, head, row["path"], chunk_seconds, chunk_overlap)
        best = max(scores, key=scores.get)
        row["intensity"], row["intensity_score"] = best, scores[best]
    return rows

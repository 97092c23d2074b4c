"""Evaluation: scores that mean something. Metrics (UA / WA / macro-F1, chance and majority baselines, ECE), held-out
splits scored as the pipeline scores them, summaries over speaker folds, paired comparisons, calibration, error
analysis, the SVM baseline and the probe's per-layer analysis. Nothing here writes a report file (`reporting`)."""

"""Layer 4: scores that mean something: metrics, pipeline-faithful prediction, error analysis, the SVM baseline, cross-validation, inference on files."""

"""Experiments: what runs things end to end, using every layer below.

One training run (`training_run`), a saved model evaluated again (`evaluate_model`), cross-validation over speaker
folds (`crossval`), hyperparameter search (`search`, `search_space`, `study`, `search_objectives`), pseudo-label
rounds (`pseudo_rounds`, `pseudo_labels`), temperature scaling after training, and the benchmark (`benchmark`,
`throughput`).
"""

"""Layer 3: the model and its training: building and freezing encoders, SERTrainer, schedules, imbalance, callbacks, diagnostics, checkpoints."""

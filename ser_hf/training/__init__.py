"""Training: SERTrainer and what it needs. Schedules, sampling, class weights, precision, callbacks, diagnostics,
checkpoints, the output dir's lock and final save, probe-head and multitask training."""

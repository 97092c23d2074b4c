"""Trainer callbacks that keep a run's work safe."""

import logging
import signal

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class PreemptionCallback(TrainerCallback):
    """On SIGTERM (pre-emption, `kill`, Slurm's time limit) save a checkpoint after the current step and stop.

    The signal only sets a flag: saving from inside a signal handler could interrupt a half-written file.
    `preempted` tells the recipe to skip the final evaluation and exit, so a later `--resume_from_checkpoint
    auto` continues from that checkpoint.
    """

    def __init__(self, signals=(signal.SIGTERM,)):
        self.preempted = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in signals}

    def _handle(self, signum, frame):
        logger.warning("Received %s: saving a checkpoint after this step, then stopping", signal.Signals(signum).name)
        self.preempted = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.preempted:
            control.should_save = True
            control.should_training_stop = True
        return control

    def restore_signal_handlers(self):
        """Put back the handlers that were there before (tests and notebooks run several trainings)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

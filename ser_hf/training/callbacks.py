"""Trainer callbacks that keep a run's work safe."""

import logging
import os
import signal
import threading

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# The exit status a shell gives a process killed by each signal (128 + number): what the recipe exits with.
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class PreemptionCallback(TrainerCallback):
    """On SIGTERM (pre-emption, `kill`, Slurm's time limit) or Ctrl-C, save a checkpoint after the current step and stop.

    The signal only sets a flag: saving from inside a signal handler could interrupt a half-written file.
    The handlers are installed when training begins and the previous ones put back when it ends, so nothing
    outside `trainer.train()` sees them. A second Ctrl-C while the checkpoint is being written interrupts at
    once (the default handler is back after the first). `stopped_by` tells the recipe to skip the final
    evaluation and exit, so a rerun with `--resume true` continues from that checkpoint.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals = tuple(signals)
        self.stopped_by = None  # the signal that stopped training, if any
        self._previous = {}
        self._pid = os.getpid()

    @property
    def preempted(self):
        return self.stopped_by is not None

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:
            # A dataloader worker forked from the training process inherits the handler, and Ctrl-C reaches the
            # whole process group: the training process alone saves, stops its workers and says so, once.
            return
        signum = signal.Signals(signum)
        logger.warning("Received %s: saving a checkpoint after this step, then stopping (again to abort at once)",
                       signum.name)
        self.stopped_by = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))

    def on_train_begin(self, args, state, control, **kwargs):
        self._pid = os.getpid()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.preempted:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore_signal_handlers()
        return control

    def restore_signal_handlers(self):
        """Put back the handlers that were there before training (also when training raised)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    @property
    def exit_code(self):
        """128 + the signal's number, as a shell reports a process the signal killed."""
        return EXIT_CODES.get(self.stopped_by, 128 + int(self.stopped_by or 0))


class WorkerStopSignals:
    """A dataloader worker's init function: stop signals from outside ignored, then the loader's own init function.

    Ctrl-C reaches the whole process group, and a scheduler's pre-emption SIGTERM every process of the job, workers
    included. torch's workers die of a SIGTERM that their parent did not send, and the training process then raises
    "DataLoader worker is killed by signal" instead of saving its checkpoint. Here a worker ignores Ctrl-C and any
    SIGTERM but its parent's, and on its parent's exits at once, as torch's own handler does (the parent sends it
    when shutting its workers down, and Python's multiprocessing at exit): the signal is handled once, by the
    training process (`PreemptionCallback`), which then stops its workers itself.
    """

    def __init__(self, init_fn=None):
        self.init_fn = init_fn

    def __call__(self, worker_id):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A handler cannot see who sent a signal; a thread waiting for it (blocked everywhere else) can.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_exit_on_parents_sigterm, args=(os.getppid(),), daemon=True).start()
        if self.init_fn is not None:
            self.init_fn(worker_id)


def _exit_on_parents_sigterm(parent):
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(0)


def with_worker_stop_signals(dataloader):
    """The dataloader with `WorkerStopSignals` around its workers' init function (no-op without workers)."""
    # accelerate's prepared loaders wrap the torch DataLoader whose iterator starts the workers.
    loader = getattr(dataloader, "base_dataloader", dataloader)
    if loader.num_workers > 0 and not isinstance(loader.worker_init_fn, WorkerStopSignals):
        loader.worker_init_fn = WorkerStopSignals(loader.worker_init_fn)
    return dataloader

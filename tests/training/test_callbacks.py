"""Tests for ser_hf.training.callbacks: SIGTERM and Ctrl-C save a checkpoint and stop, only while training."""

import os
import signal
from types import SimpleNamespace

import pytest
from transformers import TrainerControl

from ser_hf.training.callbacks import PreemptionCallback


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_training_saves_then_stops_and_handlers_are_put_back(sig, code):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    callback = PreemptionCallback()
    assert signal.getsignal(sig) is before[sig]  # constructing it changes nothing global
    callback.on_train_begin(None, None, TrainerControl())
    try:
        os.kill(os.getpid(), sig)
        assert callback.stopped_by == sig and callback.exit_code == code
        control = callback.on_step_end(None, SimpleNamespace(), TrainerControl())
        assert control.should_save and control.should_training_stop
        if sig == signal.SIGINT:  # a second Ctrl-C while the checkpoint is written interrupts at once
            assert signal.getsignal(signal.SIGINT) is before[signal.SIGINT]
    finally:
        callback.on_train_end(None, None, TrainerControl())
    assert {s: signal.getsignal(s) for s in before} == before


def test_no_signal_no_stop():
    callback = PreemptionCallback()
    callback.on_train_begin(None, None, TrainerControl())
    control = callback.on_step_end(None, SimpleNamespace(), TrainerControl())
    callback.restore_signal_handlers()
    assert not callback.preempted and not control.should_training_stop and not control.should_save

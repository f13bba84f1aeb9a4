"""How training is stopped: SIGINT and SIGTERM (what SLURM sends before preempting a job) only raise
a flag while StopSignals is active; a repeated SIGTERM is ignored (SLURM and torchrun may both send
one) while a second Ctrl-C interrupts at once. And the non-finite check looks at the loss and at
every weight.

Real signals are sent to this process; a guard handler outside StopSignals turns a signal that
gets past it into a test failure instead of killing (or interrupting) the test run."""

import contextlib
import os
import signal

import pytest
import torch
from torch import nn

from robench.train.interrupts import StopSignals, non_finite

CPU = torch.device("cpu")


class GotPast(Exception):
    """A signal reached the handler outside StopSignals."""


def send(sig: int) -> None:
    os.kill(os.getpid(), sig)  # Python runs the handler before the next statement of this thread


@contextlib.contextmanager
def guarded():
    """SIGINT and SIGTERM raise GotPast unless a handler inside replaces this one; restored after."""

    def outer(sig, frame):
        raise GotPast(signal.Signals(sig).name)

    previous = {sig: signal.signal(sig, outer) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield outer
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_only_raises_the_flag_and_the_handlers_are_restored(sig):
    with guarded() as outer:
        with StopSignals(CPU) as stop:
            assert not stop.requested(1)
            send(sig)
            assert stop.signal == sig and stop.requested(2) and stop.name == signal.Signals(sig).name
        assert signal.getsignal(signal.SIGINT) is outer and signal.getsignal(signal.SIGTERM) is outer
        with pytest.raises(GotPast):  # outside StopSignals the previous handler gets it again
            send(sig)


def test_a_repeated_sigterm_is_ignored():
    with guarded():
        with StopSignals(CPU) as stop:
            send(signal.SIGTERM)
            try:
                send(signal.SIGTERM)
                send(signal.SIGTERM)
            except KeyboardInterrupt:
                pytest.fail("a repeated SIGTERM interrupted at once")
            assert stop.signal == signal.SIGTERM and stop.requested(3)


def test_a_second_sigint_interrupts_at_once():
    with guarded():
        with StopSignals(CPU) as stop:
            send(signal.SIGINT)
            assert stop.signal == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                send(signal.SIGINT)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.mark.parametrize("where", ["0.weight", "0.bias", "2.weight", "2.bias"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_any_non_finite_weight_is_caught(where, value):
    model = net()
    with torch.no_grad():
        model.get_parameter(where).view(-1)[1] = value
    assert non_finite(torch.tensor(1.5), model).item() == 1.0


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_a_non_finite_loss_is_caught_with_finite_weights(loss):
    assert non_finite(torch.tensor(loss), net()).item() == 1.0


def test_finite_loss_and_weights_pass():
    bad = non_finite(torch.tensor(1.5), net())
    assert bad.item() == 0.0 and bad.dtype == torch.float64

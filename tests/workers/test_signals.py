"""StopSignals: which signal sequences stop gracefully and which abandon the calls in flight."""

from __future__ import annotations

import signal

import pytest

from workers.signals import StopSignals

INT, TERM = signal.SIGINT, signal.SIGTERM


class StopRequests:
    """Records the grace of each stop request (None: shutdown_grace, 0: abandon)."""

    def __init__(self) -> None:
        self.graces: list[float | None] = []

    def request_stop(self, grace: float | None = None) -> None:
        self.graces.append(grace)


def deliver(*signums: int, attach_after: int = 0, apart_s: float = 1.0) -> list[float | None]:
    """Deliver the signals ``apart_s`` seconds from each other (on a fake clock)."""
    now = [0.0]
    signals, target = StopSignals(clock=lambda: now[0]), StopRequests()
    for i, signum in enumerate(signums):
        if i == attach_after:
            signals.attach(target)
        signals.on_signal(signum)
        now[0] += apart_s
    if attach_after >= len(signums):
        signals.attach(target)
    return target.graces


@pytest.mark.parametrize("signums, graces", [
    ((INT,), [None]),
    ((TERM,), [None]),
    ((INT, TERM), [None]),  # Ctrl-C: the terminal's SIGINT, then the supervisor's forwarded SIGTERM
    ((TERM, TERM), [None]),  # systemd signals every process, the supervisor forwards its own
    # The supervisor forwards SIGINT only for a second stop, so a SIGINT after a stop began
    # is a second, separate Ctrl-C:
    ((TERM, INT), [None, 0]),
    ((INT, TERM, INT, INT), [None, 0]),
], ids=["int", "term", "ctrl-c", "systemd", "second-ctrl-c", "abandons-once"])
def test_only_a_later_sigint_abandons(signums, graces):
    assert deliver(*signums) == graces


def test_signals_before_attach_are_applied_on_attach():
    assert deliver(INT, attach_after=1) == [None]
    assert deliver(INT, INT, attach_after=2) == [None, 0]


@pytest.mark.parametrize("signums, graces", [
    # One Ctrl-C whose forwarded SIGTERM was handled before the terminal's own SIGINT.
    ((TERM, INT), [None]),
    # ... and a second Ctrl-C after it still abandons.
    ((TERM, INT, INT), [None, 0]),
    ((INT, INT), [None, 0]),  # a first SIGINT is never taken for a copy
], ids=["ctrl-c-reordered", "then-second-ctrl-c", "quick-second-ctrl-c"])
def test_a_sigint_right_after_a_first_sigterm_is_the_same_stop(signums, graces):
    assert deliver(*signums, apart_s=0.001) == graces

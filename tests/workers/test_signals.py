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


def deliver(*signums: int, attach_after: int = 0) -> list[float | None]:
    signals, target = StopSignals(), StopRequests()
    for i, signum in enumerate(signums):
        if i == attach_after:
            signals.attach(target)
        signals.on_signal(signum)
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

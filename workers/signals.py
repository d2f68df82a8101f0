"""What SIGTERM and SIGINT mean to a worker process.

The first signal, of either kind, is a graceful stop: no new jobs, calls in flight finish
(``shutdown_grace``). Only a SIGINT that comes after it abandons the calls in flight; a
repeated SIGTERM changes nothing. "Any second signal abandons" would be wrong, because one
request to stop often reaches a worker process twice:

- Ctrl-C in a terminal sends SIGINT to the whole foreground process group, and the
  supervisor, which got it too, forwards SIGTERM to its children;
- systemd (``KillMode=control-group``, its default) sends SIGTERM to every process of the
  service, and the supervisor forwards its own SIGTERM.

The supervisor forwards a stop as SIGTERM and only its second stop as SIGINT, so a second,
separate Ctrl-C (or a second signal to the supervisor) still abandons the calls.

The two copies of one Ctrl-C can also arrive the other way round: the kernel queues the
terminal's SIGINT to each process of the group in turn, and on a busy machine the supervisor
can handle it and forward SIGTERM before the worker's own SIGINT is delivered (seen: both
within 1 ms). So one SIGINT arriving within ``SAME_STOP_WINDOW_S`` after a first SIGTERM is
taken as that same stop; a person's second Ctrl-C comes later, and any SIGINT after that one
abandons.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Callable, Protocol

log = logging.getLogger(__name__)

# A SIGINT this soon after a first SIGTERM is the terminal's copy of the same Ctrl-C.
SAME_STOP_WINDOW_S = 0.5


class Stoppable(Protocol):
    def request_stop(self, grace: float | None = None) -> None: ...


class StopSignals:
    """Turns SIGTERM/SIGINT into stop requests; signals before ``attach`` are kept for it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.stop_requested = False
        self.abandon = False
        self._target: Stoppable | None = None
        self._clock = clock
        self._first: int | None = None  # the signal that began the stop, and when
        self._first_at = 0.0
        self._copy_absorbed = False

    def install(self) -> None:
        """Handle both signals from now on (call first thing: a default SIGINT handler would
        end a starting worker with a KeyboardInterrupt traceback)."""
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

    def attach(self, target: Stoppable) -> None:
        """Send stop requests to ``target`` from now on, including any that came before."""
        self._target = target
        if self.stop_requested:
            target.request_stop()
        if self.abandon:
            target.request_stop(0)

    def on_signal(self, signum: int, _frame=None) -> None:
        name = signal.Signals(signum).name
        if not self.stop_requested:
            self.stop_requested = True
            self._first, self._first_at = signum, self._clock()
            log.info("%s: finishing calls in flight, then exiting", name)
            if self._target is not None:
                self._target.request_stop()
        elif signum == signal.SIGINT and self._is_copy_of_the_first_stop():
            log.debug("SIGINT right after SIGTERM: the same stop request")
        elif signum == signal.SIGINT and not self.abandon:
            self.abandon = True
            log.warning("SIGINT while stopping: abandoning calls in flight")
            if self._target is not None:
                self._target.request_stop(0)
        else:
            log.debug("%s: already stopping", name)

    def _is_copy_of_the_first_stop(self) -> bool:
        """The terminal's SIGINT of a Ctrl-C whose forwarded SIGTERM came first (once)."""
        if self._copy_absorbed or self._first != signal.SIGTERM:
            return False
        if self._clock() - self._first_at >= SAME_STOP_WINDOW_S:
            return False
        self._copy_absorbed = True
        return True

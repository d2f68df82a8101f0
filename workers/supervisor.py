"""Runs and watches worker processes (``llm-dispatch worker --processes N``).

Dramatiq's own CLI stops every child when one dies; here a dead child is replaced, and the
jobs it was running are handed back to the queue at once (its worker id is known), instead
of waiting for its heartbeat to go stale.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("workers.supervisor")

RESTART_BACKOFF_MAX_S = 30.0
EXTRA_STOP_WAIT_S = 15.0
# The loop sleeps until a signal comes (a child's exit, a stop) or a restart is due, and at
# most this long: an idle supervisor wakes seldom (each wake-up costs CPU on a parked host).
LONGEST_PAUSE_S = 5.0


@dataclass
class Child:
    slot: int
    worker_id: str
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(
        self,
        *,
        config_path: str | None,
        processes: int,
        concurrency: int | None,
        groups: list[str] | None,
        verbose: int,
        log_format: str,
        hand_back: Callable[[str, str], int],
        shutdown_grace: float,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
    ):
        self.hand_back = hand_back  # (worker id, reason) -> jobs requeued, e.g. Client.hand_back_worker
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.config_path = config_path
        self.processes = processes
        self.concurrency = concurrency
        self.groups = groups
        self.verbose = verbose
        self.log_format = log_format
        self.shutdown_grace = shutdown_grace
        self.children: dict[int, Child] = {}
        self.stopping = 0
        self._failures: dict[int, int] = {}

    def _command(self, worker_id: str, slot: int = 0) -> list[str]:
        command = [sys.executable, "-m", "workers.process", "--worker-id", worker_id,
                   "--verbose", str(self.verbose), "--log-format", self.log_format]
        if self.config_path:
            command += ["--config", os.path.abspath(self.config_path)]
        if self.concurrency:
            command += ["--concurrency", str(self.concurrency)]
        if self.groups:
            command += ["--groups", ",".join(self.groups)]
        if self.metrics_port is not None:
            command += ["--metrics-port", str(self.metrics_port + slot)]
            if self.metrics_host:
                command += ["--metrics-host", self.metrics_host]
        return command

    def _spawn(self, slot: int) -> None:
        worker_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{slot}-{uuid.uuid4().hex[:6]}"
        process = subprocess.Popen(self._command(worker_id, slot))
        self.children[slot] = Child(slot, worker_id, process)
        log.info("started worker process %d (pid %d, id %s)", slot, process.pid, worker_id)

    def _on_signal(self, signum, _frame) -> None:
        # The first stop goes on as SIGTERM, which a child never reads as "abandon": after a
        # terminal Ctrl-C the children also got the group's SIGINT (see workers/signals.py).
        self.stopping += 1
        forward = signal.SIGTERM if self.stopping == 1 else signal.SIGINT
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(forward)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a child's exit wakes the loop
        wakeups = self._wakeup_pipe()
        for slot in range(self.processes):
            self._spawn(slot)
        restart_at: dict[int, float] = {}
        stop_deadline = None
        while True:
            due = [*restart_at.values(), *([stop_deadline] if stop_deadline is not None else [])]
            self._pause(wakeups, min([LONGEST_PAUSE_S, *(when - time.monotonic() for when in due)]))
            if self.stopping and stop_deadline is None:
                stop_deadline = time.monotonic() + self.shutdown_grace + EXTRA_STOP_WAIT_S
                log.info("stopping: calls in flight get up to %gs to finish; a second Ctrl-C abandons them",
                         self.shutdown_grace)
            for slot, child in list(self.children.items()):
                code = child.process.poll()
                if code is None:
                    continue
                del self.children[slot]
                if self.stopping:
                    if code != 0:
                        self._hand_back(child)
                    continue
                self._hand_back(child)
                lived = time.monotonic() - child.started
                failures = self._failures.get(slot, 0) + 1 if lived < 10 else 1
                self._failures[slot] = failures
                delay = min(RESTART_BACKOFF_MAX_S, 0.5 * 2 ** (failures - 1))
                log.error("worker process %d exited with code %s; restarting in %.1fs", slot, code, delay)
                restart_at[slot] = time.monotonic() + delay
            for slot, when in list(restart_at.items()):
                if self.stopping:
                    restart_at.clear()
                elif time.monotonic() >= when:
                    del restart_at[slot]
                    self._spawn(slot)
            if self.stopping and not self.children:
                return 0
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                for child in self.children.values():
                    log.warning("worker process %d did not stop in time; killing it", child.slot)
                    child.process.kill()
                    child.process.wait()
                    self._hand_back(child)
                return 1

    @staticmethod
    def _wakeup_pipe() -> int:
        """A pipe the interpreter writes a byte to on every signal; returns its read end."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end)
        return read_end

    @staticmethod
    def _pause(wakeups: int, seconds: float) -> None:
        """Until a signal came or ``seconds`` passed (a signal already pending ends it at once)."""
        if select.select([wakeups], [], [], max(0.0, seconds))[0]:
            try:
                while os.read(wakeups, 512):
                    pass
            except BlockingIOError:
                pass

    def _hand_back(self, child: Child) -> None:
        """Requeue the jobs a dead child was running (records their attempts as abandoned)."""
        try:
            released = self.hand_back(
                child.worker_id, f"worker process {child.process.pid} exited with code {child.process.returncode}"
            )
            if released:
                log.warning("handed %d jobs of dead worker %s back to the queue", released, child.worker_id)
        except Exception as exc:  # noqa: BLE001 - other workers will reap it by heartbeat
            log.error("could not hand back the jobs of %s now (%s); its heartbeat will expire", child.worker_id, exc)

"""The last word before a request leaves: the caller may withdraw its permission to send.

A worker may only call a provider for a job it can prove it still holds (its lease, see
``engine/lease.py``). Between the engine's check and the bytes leaving lie several awaits; a
process paused there (SIGSTOP, a paused VM) would wake and send a call for a job that another
worker took over meanwhile. So the engine sets a permit for the task running the call, and the
adapters ask it synchronously, at the last moment before the request is written.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

_permit: ContextVar[Callable[[], bool] | None] = ContextVar("send_permit", default=None)


class SendWithdrawn(Exception):
    """The permit said no: nothing was sent."""


@contextmanager
def send_permit(may_send: Callable[[], bool]) -> Iterator[None]:
    """Calls made inside this block (in this task) are sent only while ``may_send()`` holds."""
    token = _permit.set(may_send)
    try:
        yield
    finally:
        _permit.reset(token)


def check_send_permit() -> None:
    """Raise SendWithdrawn when the current task's permit no longer holds."""
    may_send = _permit.get()
    if may_send is not None and not may_send():
        raise SendWithdrawn("the caller can no longer prove it may send this request")

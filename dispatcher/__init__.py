"""llm-dispatcher: priority-scheduled batch LLM completions under fleet-wide rate limits.

``from dispatcher import Client`` is the entry point. The client is imported lazily so that
light entry points (the mock provider, the worker's child processes) do not pay for loading
SQLAlchemy before they need it.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
_CLIENT_NAMES = ("BatchInfo", "Client", "CompletionFailed", "CompletionTimeout", "SubmitResult")
__all__ = [*_CLIENT_NAMES, "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from dispatcher.client import BatchInfo, Client, CompletionFailed, CompletionTimeout, SubmitResult


def __getattr__(name: str):
    if name in _CLIENT_NAMES:
        from dispatcher import client

        return getattr(client, name)
    raise AttributeError(f"module 'dispatcher' has no attribute {name!r}")

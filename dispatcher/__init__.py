"""llm-dispatcher: priority-scheduled batch LLM completions under fleet-wide rate limits."""

from dispatcher.client import BatchInfo, Client, SubmitResult

__version__ = "0.1.0"
__all__ = ["BatchInfo", "Client", "SubmitResult", "__version__"]

"""The client API: submit batches, follow them, export results; API keys and files."""

from dispatcher.client.batch_info import BatchInfo
from dispatcher.client.client import Client, CompletionFailed, CompletionTimeout
from dispatcher.client.files import FileInfo
from dispatcher.client.submit import SubmitResult

__all__ = ["BatchInfo", "Client", "CompletionFailed", "CompletionTimeout", "FileInfo", "SubmitResult"]

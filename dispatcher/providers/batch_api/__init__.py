"""Provider batch APIs (OpenAI, Azure OpenAI, Anthropic) behind one interface (``base.py``)."""

from __future__ import annotations

from dispatcher.deployments import Deployment
from dispatcher.providers.batch_api.anthropic import AnthropicBatchApi
from dispatcher.providers.batch_api.azure import azure_batch_api
from dispatcher.providers.batch_api.base import (
    BatchApi, LineKind, LineResult, RemoteBatch, RemoteStatus, UnsupportedBatchRequest,
)
from dispatcher.providers.batch_api.openai import OpenAIBatchApi

__all__ = ["BatchApi", "LineKind", "LineResult", "RemoteBatch", "RemoteStatus", "UnsupportedBatchRequest",
           "batch_api_for"]


def batch_api_for(deployment: Deployment) -> BatchApi | None:
    """The deployment's batch API client; None when it takes no batch work (``batch_api``
    off, or an adapter without a batch API). The caller closes it (``aclose``)."""
    if not deployment.batch_api:
        return None
    if deployment.adapter == "openai":
        return OpenAIBatchApi(deployment)
    if deployment.adapter == "azure":
        return azure_batch_api(deployment)
    if deployment.adapter == "anthropic":
        return AnthropicBatchApi(deployment)
    return None

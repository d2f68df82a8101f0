"""Where an Azure OpenAI deployment answers: its URL and the API version it is asked for.

Two surfaces exist. The dated one names the deployment in the path and the version in the
query: ``{resource}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21``.
The ``v1`` surface (``api_version: v1``) is OpenAI's own shape under the resource,
``{resource}/openai/v1/chat/completions``, with the deployment as the body's ``model``.
Embeddings take the same two shapes with ``embeddings`` in place of ``chat/completions``.
"""

from __future__ import annotations

import os
from urllib.parse import quote

#: The newest generally available dated version of Azure OpenAI's inference API, released
#: 2024-10-21 (Microsoft's REST reference lists it as the latest GA data-plane release before
#: the undated v1 surface). Used when neither the config nor $AZURE_API_VERSION names one.
DEFAULT_API_VERSION = "2024-10-21"
#: ``api_version`` value that selects the v1 surface (no api-version query, model in the body)
V1_SURFACE = "v1"
#: read, as LiteLLM does, when the config gives no api_version
API_VERSION_ENV = "AZURE_API_VERSION"

# Suffixes people copy from the openai SDK's base_url; the resource endpoint is what precedes.
_SDK_SUFFIXES = ("/openai/v1", "/openai")


def api_version(configured: str | None) -> str:
    """The config's api_version, else $AZURE_API_VERSION, else DEFAULT_API_VERSION."""
    return configured or os.environ.get(API_VERSION_ENV, "").strip() or DEFAULT_API_VERSION


def resource_endpoint(api_base: str) -> str:
    """``https://myres.openai.azure.com`` from that, or from it with ``/openai[/v1]`` after."""
    endpoint = api_base.rstrip("/")
    for suffix in _SDK_SUFFIXES:
        if endpoint.endswith(suffix):
            return endpoint[: -len(suffix)]
    return endpoint


def chat_completions_url(api_base: str, deployment: str, version: str) -> str:
    """The chat-completions URL of ``deployment`` at the resource ``api_base``."""
    return _operation_url(api_base, deployment, version, "chat/completions")


def embeddings_url(api_base: str, deployment: str, version: str) -> str:
    """The embeddings URL of ``deployment`` at the resource ``api_base``."""
    return _operation_url(api_base, deployment, version, "embeddings")


def _operation_url(api_base: str, deployment: str, version: str, operation: str) -> str:
    endpoint = resource_endpoint(api_base)
    if version == V1_SURFACE:
        return f"{endpoint}/openai/v1/{operation}"
    return (
        f"{endpoint}/openai/deployments/{quote(deployment, safe='')}/{operation}"
        f"?api-version={quote(version, safe='')}"
    )

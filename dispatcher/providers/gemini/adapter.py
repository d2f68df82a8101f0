"""Chat completions for ``gemini/<model>`` through Google's OpenAI-compatible endpoint.

``POST https://generativelanguage.googleapis.com/v1beta/openai/chat/completions`` with
``Authorization: Bearer $GEMINI_API_KEY`` takes OpenAI's chat request and answers in OpenAI's
shape, so this is the OpenAI adapter with Gemini's error mapping (``errors.py``). The
endpoint and key variable are the registry's defaults for the ``gemini`` prefix. Embeddings
(``gemini-embedding-001``...) go to the same endpoint's ``/embeddings``, in OpenAI's shape too.
"""

from __future__ import annotations

from dispatcher.deployments import Deployment
from dispatcher.providers.gemini.errors import gemini_error_from_response
from dispatcher.providers.http import EndpointPool
from dispatcher.providers.openai.adapter import OpenAICompatibleProvider


def gemini_provider(deployment: Deployment, pool: EndpointPool) -> OpenAICompatibleProvider:
    """The adapter of one Gemini deployment."""
    return OpenAICompatibleProvider(deployment, pool, map_error=gemini_error_from_response)

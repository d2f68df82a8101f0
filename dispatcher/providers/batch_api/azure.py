"""Azure OpenAI's batches: OpenAI's Files + Batches protocol at the resource's URLs.

On the dated surface the routes are ``{resource}/openai/files``, ``/openai/batches`` and
``/openai/files/{id}/content``, each with ``?api-version=``; on the v1 surface
(``api_version: v1``) they are ``{resource}/openai/v1/...`` without it. A line's ``url`` and
the batch's ``endpoint`` are ``/chat/completions`` (or ``/embeddings``), as Azure documents,
and the body's ``model`` is the deployment name (a Global Batch deployment), which is what
the realtime adapter already sends. Credentials and error shapes are the realtime adapter's.
Azure takes up to 100,000 requests and 200 MB per file.
"""

from __future__ import annotations

from dispatcher.deployments import Deployment
from dispatcher.providers.azure import endpoint
from dispatcher.providers.azure.credentials import AzureCredentials
from dispatcher.providers.azure.errors import azure_error_from_response
from dispatcher.providers.batch_api.openai import BatchUrls, OpenAIBatchApi

MAX_LINES = 100_000
MAX_BYTES = 200_000_000


def batch_urls(api_base: str, version: str) -> BatchUrls:
    """Where the resource at ``api_base`` keeps its files and batches for ``version``."""
    resource = endpoint.resource_endpoint(api_base)
    if version == endpoint.V1_SURFACE:
        return BatchUrls(f"{resource}/openai/v1", strip_v1=True)
    return BatchUrls(f"{resource}/openai", {"api-version": version}, strip_v1=True)


def azure_batch_api(deployment: Deployment) -> OpenAIBatchApi:
    credentials = AzureCredentials(deployment)

    def auth_header() -> tuple[str, str]:
        name, value = credentials.header()
        return name.decode(), value.decode()

    return OpenAIBatchApi(
        deployment,
        urls=batch_urls(deployment.api_base or "", endpoint.api_version(deployment.api_version)),
        auth_header=auth_header,
        map_error=azure_error_from_response,
        provider_max_lines=MAX_LINES,
        provider_max_bytes=MAX_BYTES,
    )

"""Chat completions and embeddings against an Azure OpenAI deployment (``azure/<deployment>``).

Azure speaks OpenAI's protocol, so this is the OpenAI adapter given Azure's URL
(``endpoint.py``), its credential header (``credentials.py``) and its error shapes
(``errors.py``). The body's ``model`` is the deployment name: the dated surface ignores it,
the v1 surface routes by it.
"""

from __future__ import annotations

from dispatcher.deployments import Deployment
from dispatcher.providers.azure import endpoint
from dispatcher.providers.azure.credentials import AzureCredentials
from dispatcher.providers.azure.errors import azure_error_from_response
from dispatcher.providers.http import EndpointPool
from dispatcher.providers.openai.adapter import OpenAICompatibleProvider


def azure_provider(deployment: Deployment, pool: EndpointPool) -> OpenAICompatibleProvider:
    """The adapter of one Azure OpenAI deployment; ``api_version`` is settled here, once."""
    version = endpoint.api_version(deployment.api_version)
    api_base, name = deployment.api_base or "", deployment.provider_model
    return OpenAICompatibleProvider(
        deployment,
        pool,
        url=endpoint.chat_completions_url(api_base, name, version),
        embeddings_url=endpoint.embeddings_url(api_base, name, version),
        auth_header=AzureCredentials(deployment).header,
        map_error=azure_error_from_response,
    )

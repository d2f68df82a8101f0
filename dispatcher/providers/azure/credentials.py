"""The credential header of one Azure OpenAI call, read at call time (keys and tokens rotate).

In order: the config's ``api_key`` (sent as ``api-key``), the config's ``azure_ad_token``
(``Authorization: Bearer``, a Microsoft Entra ID token), then the environment as LiteLLM reads
it: ``AZURE_OPENAI_API_KEY``, ``AZURE_API_KEY``, then ``AZURE_AD_TOKEN``.
"""

from __future__ import annotations

import os

from dispatcher.config.secrets import Secret, remember_secret
from dispatcher.deployments import Deployment
from dispatcher.providers import errors as pe

KEY_ENVS = ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY")
AD_TOKEN_ENV = "AZURE_AD_TOKEN"


class AzureCredentials:
    """Builds the ``api-key`` or ``Authorization`` header for one deployment's calls."""

    def __init__(self, deployment: Deployment):
        self._name = deployment.id
        self._api_key: Secret | None = deployment.api_key
        self._ad_token: Secret | None = deployment.azure_ad_token

    def header(self) -> tuple[bytes, bytes]:
        """Raises MissingSecretError (a named variable is unset) or MissingCredentialsError."""
        if self._api_key is not None:
            return b"api-key", self._api_key.resolve().encode()
        if self._ad_token is not None:
            return b"Authorization", b"Bearer " + self._ad_token.resolve().encode()
        for name in KEY_ENVS:
            key = os.environ.get(name)
            if key:
                remember_secret(key)
                return b"api-key", key.encode()
        token = os.environ.get(AD_TOKEN_ENV)
        if token:
            remember_secret(token)
            return b"Authorization", b"Bearer " + token.encode()
        raise pe.MissingCredentialsError(
            f"no Azure credentials for deployment {self._name}: set api_key or azure_ad_token "
            f"in its litellm_params, or {', '.join(KEY_ENVS)} or {AD_TOKEN_ENV} in the worker's "
            "environment"
        )

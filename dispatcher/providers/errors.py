"""The provider error taxonomy: every provider failure becomes one of these classes.

Adapters raise only these (``raise ... from exc``); code above the adapters decides retries,
fallbacks and cooldowns from the class alone, never from status codes or message text.

    ProviderError                     any failed provider call
    ├── AuthenticationError           401/403: the key is wrong or lacks access (not retried)
    │   └── MissingCredentialsError   the key's environment variable is not set
    ├── BadRequestError               400/413/422: the request itself is wrong (not retried)
    │   ├── ContextWindowExceededError  the prompt plus max_tokens exceed the model's window
    │   └── ContentPolicyViolationError the provider refused the content
    ├── NotFoundError                 404: unknown model or endpoint (not retried)
    ├── InsufficientQuotaError        the account is out of credit (429 insufficient_quota)
    ├── RateLimitError                429: slow down; ``retry_after`` says for how long
    ├── ProviderTimeoutError          no complete answer within the deployment's timeout
    ├── ProviderConnectionError       the connection broke before a response arrived
    │   └── ProviderUnreachableError  no connection could be made (the request was not sent)
    ├── ServerError                   5xx from the provider
    └── InvalidResponseError          2xx whose body is not a chat completion
"""

from __future__ import annotations


class ProviderError(Exception):
    """A failed provider call. ``message`` is already free of secrets."""

    #: short code used in attempt rows and OpenAI-style error files
    code = "provider_error"
    #: worth trying again (same or another deployment)
    retryable = True
    #: counts toward the deployment's allowed_fails (cooldowns)
    counts_as_deployment_failure = True
    #: the request may have reached the provider (and counts against its limits)
    request_sent = True
    #: a fault of this deployment (its key, its model name), not of the request: another
    #: deployment of the same group may well succeed
    deployment_specific = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def error_class(self) -> str:
        return type(self).__name__


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (401/403)."""

    code = "authentication_error"
    retryable = False
    deployment_specific = True


class MissingCredentialsError(AuthenticationError):
    """The deployment's ``os.environ/NAME`` key is not set where the worker runs."""

    code = "missing_credentials"
    counts_as_deployment_failure = False
    request_sent = False


class BadRequestError(ProviderError):
    """The provider says the request is malformed (400/413/422)."""

    code = "invalid_request_error"
    retryable = False
    counts_as_deployment_failure = False


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max_tokens) is longer than the model's context window."""

    code = "context_length_exceeded"


class ContentPolicyViolationError(BadRequestError):
    """The provider refused the request on content-policy grounds."""

    code = "content_policy_violation"


class NotFoundError(ProviderError):
    """The model or endpoint does not exist at this provider (404)."""

    code = "not_found_error"
    deployment_specific = True
    retryable = False


class InsufficientQuotaError(ProviderError):
    """The account has no credit or quota left; waiting will not help."""

    code = "insufficient_quota"
    retryable = False


class RateLimitError(ProviderError):
    """429: the provider wants fewer requests or tokens; see ``retry_after``."""

    code = "rate_limit_exceeded"


class ProviderTimeoutError(ProviderError):
    """No complete response within the deployment's timeout."""

    code = "timeout"


class ProviderConnectionError(ProviderError):
    """The connection could not be made or broke before a response arrived."""

    code = "connection_error"


class ProviderUnreachableError(ProviderConnectionError):
    """No connection could be made: the request never reached the provider."""

    request_sent = False


class ServerError(ProviderError):
    """The provider failed (5xx)."""

    code = "server_error"


class InvalidResponseError(ProviderError):
    """A success status whose body is not a valid chat completion."""

    code = "invalid_response"


# Class names accepted as keys of retry_policy (LiteLLM spelling) -> our classes.
RETRY_POLICY_KEYS: dict[str, type[ProviderError]] = {
    "AuthenticationErrorRetries": AuthenticationError,
    "BadRequestErrorRetries": BadRequestError,
    "ContextWindowExceededErrorRetries": ContextWindowExceededError,
    "ContentPolicyViolationErrorRetries": ContentPolicyViolationError,
    "NotFoundErrorRetries": NotFoundError,
    "RateLimitErrorRetries": RateLimitError,
    "TimeoutErrorRetries": ProviderTimeoutError,
    "InternalServerErrorRetries": ServerError,
    "ConnectionErrorRetries": ProviderConnectionError,
    "InvalidResponseErrorRetries": InvalidResponseError,
}

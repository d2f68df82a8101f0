"""Deployments and model groups as the rest of the code sees them, built once from config."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from dispatcher.config import urls
from dispatcher.config.schema import DeploymentConfig, DispatcherConfig
from dispatcher.config.secrets import ENV_PREFIX, Secret
from dispatcher.errors import ConfigError
from dispatcher.providers.registry import NOT_YET_SUPPORTED_HINTS, PROVIDERS, provider_spec


@dataclass(frozen=True, eq=False)
class Deployment:
    """One way to serve a model group: a provider endpoint, a model name, limits and prices."""

    id: str
    group: str
    provider: str
    adapter: str
    provider_model: str
    api_base: str | None
    api_key: Secret | None
    rpm: int | None
    tpm: int | None
    weight: float | None
    timeout: float
    max_parallel_requests: int | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    limit_key: str
    tpm_counts: str = "max_tokens"
    itpm: int | None = None  # input tokens per minute
    otpm: int | None = None  # output tokens per minute
    # max_tokens sent when a request sets none, for providers that require it (Anthropic)
    default_max_tokens: int = 1024
    max_budget: float | None = None
    budget_duration: str | None = None
    body_defaults: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, Secret] = field(default_factory=dict)
    # Azure OpenAI: the API version asked for (None: the adapter's default) and an Entra ID
    # token sent instead of an api-key
    api_version: str | None = None
    azure_ad_token: Secret | None = None
    mock_latency_ms: float = 0.0
    mock_latency_jitter_ms: float = 0.0
    mock_response: str | None = None
    base_model: str | None = None  # model_info.base_model: what the price table knows it as
    batch_api: bool = False  # may take work through the provider's batch API
    batch_max_lines: int | None = None  # a provider batch's cap below the provider's own
    batch_max_bytes: int | None = None
    input_cost_per_token_batches: float | None = None  # None: half the realtime price
    output_cost_per_token_batches: float | None = None

    def __repr__(self) -> str:  # never print keys, only where they come from
        return f"Deployment(id={self.id!r}, group={self.group!r}, model={self.provider}/{self.provider_model})"


@dataclass(frozen=True)
class Deployments:
    """Every deployment, by id and by model group, in config order."""

    by_id: dict[str, Deployment]
    by_group: dict[str, list[Deployment]]

    @property
    def groups(self) -> list[str]:
        return list(self.by_group)

    def group(self, name: str) -> list[Deployment]:
        return self.by_group.get(name, [])


def _looks_secret(header_name: str) -> bool:
    lowered = header_name.lower()
    return any(word in lowered for word in ("key", "auth", "token", "secret"))


class DeploymentProblem(ValueError):
    """A model_list entry that cannot be served; ``where`` is its key path."""

    def __init__(self, where: str, message: str, *, unsupported_provider: bool = False):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.unsupported_provider = unsupported_provider


def _api_base(value: str | None, where: str) -> str | None:
    """``api_base`` checked as a URL; ``os.environ/NAME`` (LiteLLM's form) is read now.

    Keys are read at call time instead (Secret.resolve at each call): they may rotate.
    """
    if not value:
        return None
    try:
        return urls.http_base_url(urls.from_environment(value))
    except ValueError as exc:
        source = f" (from {value})" if value.startswith(ENV_PREFIX) else ""
        raise DeploymentProblem(where, f"{exc}{source}") from None


def _api_base_from_environment(variable: str | None, where: str) -> str | None:
    """The provider's usual variable (AZURE_API_BASE) when the config gives no api_base."""
    if not variable or not os.environ.get(variable):
        return None
    return _api_base(f"{ENV_PREFIX}{variable}", where)


def _azure_ad_token(value: str | None, where: str) -> Secret | None:
    if not value:
        return None
    if value.startswith("oidc/"):
        raise DeploymentProblem(where, "oidc/ token references are not supported; give the token "
                                       "itself as os.environ/NAME")
    return Secret(value, where)


# Providers whose batch API is on unless batch_api: false; an OpenAI-compatible endpoint
# (hosted_vllm/, openai/ at another api_base) may turn it on with batch_api: true.
BATCH_API_BY_DEFAULT = {"openai", "azure", "anthropic"}


def _batch_api(configured: bool | None, provider: str, adapter: str, where: str) -> bool:
    if configured is None:
        return provider in BATCH_API_BY_DEFAULT
    if configured and adapter not in ("openai", "azure", "anthropic"):
        raise DeploymentProblem(f"{where}.batch_api", f"provider '{provider}' has no batch API we can use "
                                                     "(openai/, azure/, anthropic/ and OpenAI-compatible endpoints do)")
    return configured


def _unsupported(provider: str, where: str) -> DeploymentProblem:
    hint = NOT_YET_SUPPORTED_HINTS.get(provider) or (
        "any OpenAI-compatible endpoint works as openai/<model> with its api_base"
    )
    return DeploymentProblem(
        f"{where}.model", f"provider '{provider}' is not supported yet; {hint}", unsupported_provider=True
    )


def supported_prefixes_note(problems: list[DeploymentProblem]) -> str:
    """A closing line listing the supported prefixes, when some problem is an unsupported one."""
    if not any(problem.unsupported_provider for problem in problems):
        return ""
    return f"\n  (supported provider prefixes: {', '.join(sorted(PROVIDERS))})"


def build_deployment(
    entry: DeploymentConfig, index: int, default_timeout: float, deployment_id: str,
    default_max_tokens: int = 1024,
) -> Deployment:
    """One model_list entry as a Deployment; DeploymentProblem says why it cannot be served."""
    params = entry.litellm_params
    where = f"model_list[{index}].litellm_params"
    if "*" in entry.model_name or "*" in params.model:
        raise DeploymentProblem(
            f"model_list[{index}]",
            f"wildcard routing (model_name '{entry.model_name}', model '{params.model}') is not "
            "supported; add one entry per model",
        )
    spec = provider_spec(params.provider)
    if spec is None:
        raise _unsupported(params.provider, where)
    if not params.provider_model:
        raise DeploymentProblem(f"{where}.model", f"'{params.model}' names no model after the provider prefix")
    api_base = (
        _api_base(params.api_base, f"{where}.api_base")
        or _api_base_from_environment(spec.base_env, f"{where}.api_base")
        or spec.default_api_base
    )
    if spec.adapter in ("openai", "azure") and not api_base:
        also = f" (or set {spec.base_env})" if spec.base_env else ""
        raise DeploymentProblem(f"{where}.api_base", f"required for provider '{params.provider}'{also}")
    api_key = None
    if params.api_key:
        api_key = Secret(params.api_key, f"{where}.api_key")
    elif spec.key_env and not params.api_base:
        api_key = Secret(f"os.environ/{spec.key_env}", f"{where}.api_key (default)")
    return Deployment(
        id=deployment_id,
        group=entry.model_name,
        provider=params.provider,
        adapter=spec.adapter,
        provider_model=params.provider_model,
        api_base=api_base.rstrip("/") if api_base else None,
        api_key=api_key,
        rpm=params.rpm,
        tpm=params.tpm,
        weight=params.weight,
        timeout=params.timeout or default_timeout,
        max_parallel_requests=params.max_parallel_requests,
        input_cost_per_token=params.input_cost_per_token,
        output_cost_per_token=params.output_cost_per_token,
        limit_key=params.limit_group or deployment_id,
        tpm_counts=params.tpm_counts,
        itpm=params.itpm,
        otpm=params.otpm,
        default_max_tokens=default_max_tokens,
        max_budget=params.max_budget,
        budget_duration=params.budget_duration or ("30d" if params.max_budget else None),
        body_defaults=params.body_defaults(),
        extra_headers={
            name: Secret(value, f"{where}.extra_headers.{name}", _looks_secret(name))
            for name, value in (params.extra_headers or {}).items()
        },
        api_version=params.api_version,
        azure_ad_token=_azure_ad_token(params.azure_ad_token, f"{where}.azure_ad_token"),
        mock_latency_ms=params.mock_latency_ms,
        mock_latency_jitter_ms=params.mock_latency_jitter_ms,
        mock_response=params.mock_response,
        base_model=entry.model_info.base_model,
        batch_api=_batch_api(params.batch_api, params.provider, spec.adapter, where),
        batch_max_lines=params.batch_max_lines,
        batch_max_bytes=params.batch_max_bytes,
        input_cost_per_token_batches=params.input_cost_per_token_batches,
        output_cost_per_token_batches=params.output_cost_per_token_batches,
    )


def deployment_problems(config: DispatcherConfig) -> dict[int, DeploymentProblem]:
    """model_list index -> why that entry cannot be served, for every entry that cannot."""
    problems: dict[int, DeploymentProblem] = {}
    for index, entry in enumerate(config.model_list):
        try:
            build_deployment(entry, index, config.router_settings.timeout, f"#{index}")
        except DeploymentProblem as problem:
            problems[index] = problem
    return problems


def build_deployments(config: DispatcherConfig) -> Deployments:
    """Every model_list entry as a Deployment; ConfigError lists every entry that cannot be served.

    ``parse_config`` has already dropped (with a warning) the entries that cannot be served, so
    a config from the loader builds whole.
    """
    by_id: dict[str, Deployment] = {}
    by_group: dict[str, list[Deployment]] = {}
    problems: list[str] = []
    unbuildable: list[DeploymentProblem] = []
    for index, entry in enumerate(config.model_list):
        group_members = by_group.setdefault(entry.model_name, [])
        deployment_id = entry.model_info.id or f"{entry.model_name}#{len(group_members)}"
        if deployment_id in by_id:
            problems.append(f"model_list[{index}]: deployment id '{deployment_id}' is used twice")
            continue
        try:
            deployment = build_deployment(
                entry, index, config.router_settings.timeout, deployment_id,
                config.dispatcher_settings.default_max_tokens,
            )
        except DeploymentProblem as problem:
            problems.append(str(problem))
            unbuildable.append(problem)
            continue
        by_id[deployment_id] = deployment
        group_members.append(deployment)
    if problems:
        raise ConfigError(
            "model_list cannot be served:\n  " + "\n  ".join(problems) + supported_prefixes_note(unbuildable)
        )
    return Deployments(by_id=by_id, by_group={g: m for g, m in by_group.items() if m})

"""Deployments and model groups as the rest of the code sees them, built once from config."""

from __future__ import annotations


from dataclasses import dataclass, field
from typing import Any

from dispatcher.config.schema import DispatcherConfig
from dispatcher.config.secrets import MissingSecretError, Secret
from dispatcher.errors import ConfigError
from dispatcher.providers.registry import PROVIDERS, provider_spec


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
    max_budget: float | None = None
    budget_duration: str | None = None
    body_defaults: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, Secret] = field(default_factory=dict)
    mock_latency_ms: float = 0.0
    mock_latency_jitter_ms: float = 0.0
    mock_response: str | None = None

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


def _from_environment(value: str | None, where: str) -> str | None:
    """``os.environ/NAME`` (LiteLLM's form) read now; other values as they are.

    Keys are read at call time instead (Secret.resolve at each call): they may rotate.
    """
    if not value:
        return value
    try:
        return Secret(value, where, sensitive=False).resolve()
    except MissingSecretError as missing:
        raise ConfigError(f"{where}: environment variable {missing.name} is not set") from None
    except ValueError as exc:  # "os.environ/" without a name
        raise ConfigError(str(exc)) from None


def build_deployments(config: DispatcherConfig) -> Deployments:
    """Resolve every model_list entry; ConfigError names the entry that cannot be served."""
    by_id: dict[str, Deployment] = {}
    by_group: dict[str, list[Deployment]] = {}
    default_timeout = config.router_settings.timeout
    for index, entry in enumerate(config.model_list):
        params = entry.litellm_params
        where = f"model_list[{index}].litellm_params"
        spec = provider_spec(params.provider)
        if spec is None:
            raise ConfigError(
                f"{where}.model: provider '{params.provider}' is not supported; "
                f"supported prefixes: {', '.join(sorted(PROVIDERS))} "
                "(any OpenAI-compatible endpoint works as openai/<model> with api_base)"
            )
        api_base = _from_environment(params.api_base, f"{where}.api_base") or spec.default_api_base
        if spec.adapter == "openai" and not api_base:
            raise ConfigError(f"{where}.api_base: required for provider '{params.provider}'")
        api_key = None
        if params.api_key:
            api_key = Secret(params.api_key, f"{where}.api_key")
        elif spec.key_env and not params.api_base:
            api_key = Secret(f"os.environ/{spec.key_env}", f"{where}.api_key (default)")
        group_members = by_group.setdefault(entry.model_name, [])
        deployment_id = entry.model_info.id or f"{entry.model_name}#{len(group_members)}"
        if deployment_id in by_id:
            raise ConfigError(f"model_list[{index}]: deployment id '{deployment_id}' is used twice")
        deployment = Deployment(
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
            max_budget=params.max_budget,
            budget_duration=params.budget_duration or ("30d" if params.max_budget else None),
            body_defaults=params.body_defaults(),
            extra_headers={
                name: Secret(value, f"{where}.extra_headers.{name}", _looks_secret(name))
                for name, value in (params.extra_headers or {}).items()
            },
            mock_latency_ms=params.mock_latency_ms,
            mock_latency_jitter_ms=params.mock_latency_jitter_ms,
            mock_response=params.mock_response,
        )
        by_id[deployment_id] = deployment
        group_members.append(deployment)
    return Deployments(by_id=by_id, by_group=by_group)

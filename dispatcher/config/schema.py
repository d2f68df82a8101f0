"""The configuration file's shape, validated once at start.

LiteLLM proxy compatible: ``model_list`` entries (``model_name``, ``litellm_params``,
``model_info``) and ``router_settings`` keep LiteLLM's names, so an existing config works.
``dispatcher_settings`` is ours: where state lives and how workers behave.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dispatcher.config import urls
from dispatcher.config.admin_key import admin_key_secret
from dispatcher.config.body_defaults import BODY_PARAMETERS, body_default_problems
from dispatcher.config.secrets import Secret
from dispatcher.providers.registry import split_model

RoutingStrategyName = Literal[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "cost-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
]

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class LiteLLMParams(BaseModel):
    """How to call one deployment. Unknown keys are kept and sent as default body fields."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(
        min_length=1,
        description="'<provider>/<provider model name>', e.g. openai/gpt-4o-mini; a bare name is OpenAI's",
    )
    api_base: str | None = None
    api_key: str | None = Field(default=None, description="literal key or os.environ/NAME")
    # Azure OpenAI (azure/...): the REST API version ("v1": the v1 surface), and a Microsoft
    # Entra ID token sent as Bearer instead of an api-key (literal or os.environ/NAME).
    api_version: str | None = None
    azure_ad_token: str | None = None
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    # Input and output tokens per minute, limited apart (Anthropic's ITPM and OTPM).
    itpm: PositiveInt | None = None
    otpm: PositiveInt | None = None
    weight: PositiveFloat | None = None
    timeout: PositiveFloat | None = None
    max_parallel_requests: PositiveInt | None = None
    input_cost_per_token: Annotated[float, Field(ge=0)] | None = None
    output_cost_per_token: Annotated[float, Field(ge=0)] | None = None
    extra_headers: dict[str, str] | None = None
    # Deployments naming the same limit_group share one rpm/tpm allowance (providers count per key).
    limit_group: str | None = None
    # How the provider counts a request against tpm: prompt + max_tokens when it is admitted
    # (OpenAI's way, the safe default), or the tokens the call really used.
    tpm_counts: Literal["max_tokens", "usage"] = "max_tokens"
    # Options of the built-in mock provider (mock/...); ignored by other providers.
    # This deployment's budget: USD it may spend per period (LiteLLM's max_budget).
    max_budget: PositiveFloat | None = None
    budget_duration: str | None = None
    # The provider's own batch API (half price, 24 h): on by default for openai/, azure/ and
    # anthropic/ deployments; true turns it on for an OpenAI-compatible endpoint that has one
    # (vLLM's, another llm-dispatcher's). The limits cap a provider batch below the provider's
    # own (OpenAI 50,000 lines and 200 MB, Anthropic 100,000 and 256 MB).
    batch_api: bool | None = None
    input_cost_per_token_batches: Annotated[float, Field(ge=0)] | None = None
    output_cost_per_token_batches: Annotated[float, Field(ge=0)] | None = None
    batch_max_lines: PositiveInt | None = None
    batch_max_bytes: PositiveInt | None = None
    mock_latency_ms: NonNegativeFloat = 0.0
    mock_latency_jitter_ms: NonNegativeFloat = 0.0
    mock_response: str | None = None

    @field_validator("api_version", mode="before")
    @classmethod
    def _api_version_written_as_a_date(cls, value: Any) -> Any:
        # YAML reads an unquoted api_version: 2024-10-21 as a date
        return value.isoformat() if isinstance(value, datetime.date) else value

    @field_validator("budget_duration")
    @classmethod
    def _budget_duration_is_a_duration(cls, value: str | None) -> str | None:
        return _duration(value) if value is not None else None

    @model_validator(mode="after")
    def _body_defaults_are_plain_json(self) -> "LiteLLMParams":
        problems = body_default_problems(self.model_extra or {})
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def provider(self) -> str:
        return split_model(self.model)[0]

    @property
    def provider_model(self) -> str:
        return split_model(self.model)[1]

    def body_defaults(self) -> dict[str, Any]:
        """Chat-completion parameters set in litellm_params (temperature...): request defaults.

        Other extra keys (LiteLLM connection settings such as api_version or max_retries,
        or typos) are never sent to the provider; ``ignored_keys`` lists them.
        """
        extra = self.model_extra or {}
        defaults = {k: v for k, v in extra.items() if k in BODY_PARAMETERS}
        if isinstance(extra.get("extra_body"), dict):
            defaults.update(extra["extra_body"])
        return defaults

    def ignored_keys(self) -> list[str]:
        return sorted(k for k in (self.model_extra or {}) if k not in BODY_PARAMETERS and k != "extra_body")


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    base_model: str | None = Field(
        default=None, description="the model priced (LiteLLM's key), e.g. azure/gpt-4o for an Azure "
        "deployment whose name says nothing of its model",
    )


class DeploymentConfig(BaseModel):
    """One ``model_list`` entry: a deployment of the model group ``model_name``."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(min_length=1)
    litellm_params: LiteLLMParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)


FallbackList = list[dict[str, list[str]]]


def _duration(value: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?[smhd]", str(value).strip()):
        raise ValueError(f"'{value}' is not a duration like 30m, 24h, 1d or 30d")
    return str(value).strip()


def _check_retry_classes(policy: dict[str, int], where: str) -> None:
    from dispatcher.providers.errors import RETRY_POLICY_KEYS

    unknown = sorted(set(policy) - set(RETRY_POLICY_KEYS))
    if unknown:
        raise ValueError(
            f"{where}unknown error class {', '.join(unknown)}; "
            f"known: {', '.join(sorted(RETRY_POLICY_KEYS))}"
        )


class ProviderBudget(BaseModel):
    """``provider_budget_config`` entry: spend at most ``budget_limit`` USD per ``time_period``."""

    model_config = ConfigDict(extra="forbid")

    budget_limit: PositiveFloat
    time_period: str = "1d"

    @field_validator("time_period")
    @classmethod
    def _period_is_a_duration(cls, value: str) -> str:
        return _duration(value)


class RouterSettings(BaseModel):
    """LiteLLM ``router_settings``: routing, retries, fallbacks, cooldowns."""

    model_config = ConfigDict(extra="allow")

    routing_strategy: RoutingStrategyName = "simple-shuffle"
    routing_strategy_args: dict[str, Any] = Field(default_factory=dict)
    num_retries: Annotated[int, Field(ge=0)] = 3
    retry_after: NonNegativeFloat = 0.0
    timeout: PositiveFloat = 600.0
    retry_policy: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    model_group_retry_policy: dict[str, dict[str, Annotated[int, Field(ge=0)]]] = Field(
        default_factory=dict
    )
    fallbacks: FallbackList = Field(default_factory=list)
    default_fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: FallbackList = Field(default_factory=list)
    content_policy_fallbacks: FallbackList = Field(default_factory=list)
    max_fallbacks: Annotated[int, Field(ge=0)] = 5
    allowed_fails: Annotated[int, Field(ge=0)] = 3
    cooldown_time: NonNegativeFloat = 5.0
    disable_cooldowns: bool = False
    # Calls in flight per deployment and worker process, for deployments that set none.
    default_max_parallel_requests: PositiveInt | None = None
    provider_budget_config: dict[str, ProviderBudget] = Field(default_factory=dict)

    @field_validator("retry_policy")
    @classmethod
    def _known_error_classes(cls, policy: dict[str, int]) -> dict[str, int]:
        _check_retry_classes(policy, "")
        return policy

    @field_validator("model_group_retry_policy")
    @classmethod
    def _known_error_classes_per_group(cls, policies: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for group, policy in policies.items():
            _check_retry_classes(policy, f"group '{group}': ")
        return policies


class ProviderBatchSettings(BaseModel):
    """How workers drive the providers' batch APIs (``submit --via provider-batch``)."""

    model_config = ConfigDict(extra="forbid")

    check_interval: PositiveFloat = Field(
        default=2.0, description="seconds between a worker's looks for provider batches to form, send or "
        "poll; doubling up to 5 times that while its looks find nothing"
    )
    first_poll: PositiveFloat = Field(default=30.0, description="seconds from creating a provider batch to its first poll")
    max_poll_interval: PositiveFloat = Field(
        default=600.0, description="longest wait between polls (the wait doubles from first_poll)"
    )
    per_worker: PositiveInt = Field(
        default=4, description="provider batches one worker process works on at once (uploads, polls, imports)"
    )
    import_chunk: PositiveInt = Field(default=2000, description="result lines written per transaction")


class RetentionSettings(BaseModel):
    """Bodies that workers prune on their own (``llm-dispatch prune`` does the same once)."""

    model_config = ConfigDict(extra="forbid")

    finished_before: str | None = Field(
        default=None, description="prune batches that ended this long ago (30d); unset: never"
    )
    include_undownloaded: bool = Field(
        default=False, description="also prune batches whose results were never downloaded"
    )
    interval: PositiveFloat = Field(default=600.0, description="seconds between a fleet's prunes")

    @field_validator("finished_before")
    @classmethod
    def _is_a_duration(cls, value: str | None) -> str | None:
        return _duration(value) if value is not None else None


class VacuumSettings(BaseModel):
    """VACUUM of the jobs table by the workers, on PostgreSQL (store/vacuum.py)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="one worker of the fleet VACUUMs jobs whenever 1% of its rows are dead "
        "versions; false: leave it to autovacuum (which looks once a minute and throttles itself)",
    )
    interval: PositiveFloat = Field(
        default=3.0, description="seconds between the fleet's looks at the jobs table's dead row versions"
    )


class WorkerSettings(BaseModel):
    """How one worker process behaves. Defaults suit calls that take seconds."""

    model_config = ConfigDict(extra="forbid")

    processes: PositiveInt = 1
    concurrency: PositiveInt = Field(
        default=256, description="provider calls one process keeps in flight"
    )
    claim_batch: PositiveInt = Field(default=64, description="jobs claimed per SQL round trip")
    heartbeat_interval: PositiveFloat = Field(default=2.0, description="seconds")
    dead_after: PositiveFloat = Field(
        default=15.0, description="seconds without heartbeat before a worker's jobs are taken over"
    )
    poll_interval: PositiveFloat = Field(
        default=2.0, description="idle workers look for work this often (seconds)"
    )
    max_worker_deaths: PositiveInt = Field(
        default=3,
        description="a job that was running in this many workers that died (crash, OOM, kill) "
        "fails as worker_died instead of being retried",
    )
    shutdown_grace: NonNegativeFloat = Field(
        default=30.0, description="seconds in-flight calls may finish after SIGTERM"
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = Field(
        default=None, description="serve Prometheus metrics here (process i of a worker uses port + i)"
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the metrics server listens on; 0.0.0.0 lets other machines scrape it",
    )
    result_flush_interval: PositiveFloat = Field(default=0.05, description="seconds")
    result_flush_size: PositiveInt = 256


class RateLimitSettings(BaseModel):
    """How close to each deployment's rpm/tpm the fleet runs."""

    model_config = ConfigDict(extra="forbid")

    headroom: Annotated[float, Field(ge=0, lt=0.5)] = Field(
        default=0.03,
        description="fraction of every limit left unused, absorbing network timing jitter",
    )
    lookahead_s: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.5, description="how far ahead a worker may book send times"
    )
    default_pause_s: PositiveFloat = Field(
        default=1.0, description="pause after a 429 that names no retry time (seconds)"
    )
    provider_headers: bool = Field(
        default=True,
        description="beyond the even pace, spend the room a provider's rate-limit headers "
        "(x-ratelimit-*, anthropic-ratelimit-*) say it has, up to a minute of the limits ahead; "
        "only where the provider's stated limit is the configured per-minute one (a provider "
        "counting over shorter windows keeps the even pace)",
    )
    urgent_reserve: Annotated[float, Field(ge=0, lt=0.5)] = Field(
        default=0.0,
        description="fraction of each limit that only urgent calls (priority 0-2) may take from "
        "the room a provider's headers report, until a second before that room grows: an urgent "
        "call then never waits for a window a backlog has spent, but the backlog runs that much "
        "slower on a per-minute provider",
    )
    late_tolerance_s: Annotated[float, Field(ge=0)] = Field(
        default=0.03,
        description="a call that missed its booked send time by more than this books a new one "
        "instead of crowding the next calls (an overloaded loop must not burst)",
    )


class CacheSettings(BaseModel):
    """The response cache: identical requests answered without a provider call."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="cache requests with temperature 0 for every batch (submit --cache forces it for one batch)",
    )
    ttl_s: PositiveFloat = Field(default=86400.0, description="how long an answer is reused (seconds)")


# OpenAI's limit on a batch input file (200 MB), plus room for the multipart envelope around it.
MAX_BATCH_FILE_BYTES = 209_715_200
MULTIPART_ROOM_BYTES = 1_048_576


class ApiSettings(BaseModel):
    """The HTTP API (``llm-dispatch serve``): where it listens, who administers it, its limits."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        description="address to listen on; 0.0.0.0 lets other machines (or containers) connect",
    )
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    admin_key: str | None = Field(
        default=None,
        description="os.environ/NAME (or a literal): a bearer key that sees and may do everything; "
        "keys made by `llm-dispatch keys create` see only their own files and batches. Without it, "
        "a LiteLLM general_settings.master_key is the admin key",
    )
    max_body_bytes: PositiveInt = Field(
        default=MAX_BATCH_FILE_BYTES + MULTIPART_ROOM_BYTES,
        description="largest request body accepted (HTTP 413 above); the default fits OpenAI's "
        "200 MB batch files",
    )
    completion_timeout_s: PositiveFloat = Field(
        default=600.0,
        description="how long POST /v1/chat/completions waits for its answer before a 504 (the "
        "request stays queued; its batch id is in the error message)",
    )

    @field_validator("admin_key")
    @classmethod
    def _admin_key_is_usable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("admin_key is empty; give os.environ/NAME or leave it out")
        Secret(value, "dispatcher_settings.api.admin_key")  # refuses 'os.environ/' without a name
        return value


class DispatcherSettings(BaseModel):
    """Our own section: where state lives, defaults for submissions, worker tuning."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///./llm-dispatch.db"
    redis_url: str | None = None
    namespace: str = Field(default="llmd", pattern=r"^[A-Za-z0-9_.:-]+$")
    default_model: str | None = None
    default_priority: Annotated[int, Field(ge=0, le=9)] = 5
    default_max_tokens: PositiveInt = Field(
        default=1024, description="completion tokens assumed when a request sets no max_tokens"
    )
    completion_window: str = "24h"
    default_via: Literal["realtime", "provider-batch", "auto"] = Field(
        default="realtime",
        description="the route of a batch submitted without --via: realtime calls, the provider's "
        "batch API (half price, within 24 h), or auto (provider-batch for low/bulk priority with a "
        "window of at least 24 h)",
    )
    fair_share: bool = Field(
        default=True,
        description="batches of one priority take turns; false: first submitted, first served",
    )
    when_group_cooling: Literal["fallback", "wait"] = Field(
        default="fallback",
        description="when every deployment of a group is cooling down: move its jobs to the "
        "group's fallbacks (if it has any), or wait for the cooldown to end",
    )
    retry_backoff_base: PositiveFloat = Field(
        default=1.0, description="first backoff (seconds) after a rate limit; doubles per retry"
    )
    retry_backoff_cap: PositiveFloat = Field(default=60.0, description="longest backoff (seconds)")
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    provider_batches: ProviderBatchSettings = Field(default_factory=ProviderBatchSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    vacuum: VacuumSettings = Field(default_factory=VacuumSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_usable(cls, value: str) -> str:
        return urls.database_url(urls.from_environment(value))

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_usable(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return urls.redis_url(urls.from_environment(value))

    @field_validator("completion_window")
    @classmethod
    def _window_is_a_duration(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?[smhd]", value.strip()):
            raise ValueError(f"'{value}' is not a duration like 30m, 24h or 7d")
        return value.strip()


class DispatcherConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid")

    model_list: list[DeploymentConfig] = Field(min_length=1)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    dispatcher_settings: DispatcherSettings = Field(default_factory=DispatcherSettings)
    # LiteLLM proxy sections: what applies here is adopted by config.litellm_compat.
    litellm_settings: dict[str, Any] | None = None
    general_settings: dict[str, Any] | None = None
    environment_variables: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _deployment_ids_are_unique(self) -> "DispatcherConfig":
        # Settings naming model groups are checked by config.group_references, once the
        # entries that cannot be served are known.
        ids = [d.model_info.id for d in self.model_list if d.model_info.id]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"model_info.id must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _one_admin_key(self) -> "DispatcherConfig":
        self.admin_key()  # a master_key that cannot be a key, or two admin keys that differ: refused
        return self

    def admin_key(self) -> Secret | None:
        """The HTTP API's admin key, unresolved: ``dispatcher_settings.api.admin_key``, else
        LiteLLM's ``general_settings.master_key`` (``config.admin_key``); None: there is none."""
        return admin_key_secret(self.dispatcher_settings.api.admin_key, self.general_settings)

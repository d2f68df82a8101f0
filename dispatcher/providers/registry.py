"""Which adapter serves a ``<provider>/`` prefix, with that provider's usual endpoint and key.

All of these but ``mock`` speak the OpenAI chat-completions protocol. Adding a provider with its
own protocol is one adapter module plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    adapter: str  # "openai" or "mock"
    default_api_base: str | None
    key_env: str | None  # environment variable read when the config gives no api_key


PROVIDERS: dict[str, ProviderSpec] = {
    "openai": ProviderSpec("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "deepseek": ProviderSpec("openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "groq": ProviderSpec("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ProviderSpec("openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "together_ai": ProviderSpec("openai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "openrouter": ProviderSpec("openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "fireworks_ai": ProviderSpec(
        "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"
    ),
    "dashscope": ProviderSpec(
        "openai", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY"
    ),
    "xai": ProviderSpec("openai", "https://api.x.ai/v1", "XAI_API_KEY"),
    "hosted_vllm": ProviderSpec("openai", None, None),
    "mock": ProviderSpec("mock", None, None),
}


def provider_spec(name: str) -> ProviderSpec | None:
    return PROVIDERS.get(name)

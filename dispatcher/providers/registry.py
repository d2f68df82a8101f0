"""Which adapter serves a ``<provider>/`` prefix, with that provider's usual endpoint and key.

Most speak the OpenAI chat-completions protocol; ``anthropic`` (Messages API) and ``mock`` have
adapters of their own. Adding a provider with its
own protocol is one adapter module plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    adapter: str  # "openai", "azure", "gemini", "anthropic" or "mock": which adapter ProviderSet builds
    default_api_base: str | None
    key_env: str | None  # environment variable read when the config gives no api_key
    base_env: str | None = None  # environment variable read when the config gives no api_base


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
    # Azure's keys (api-key header or Entra ID token) are chosen per call by
    # providers/azure/credentials.py, so no key_env here.
    "azure": ProviderSpec("azure", None, None, base_env="AZURE_API_BASE"),
    "gemini": ProviderSpec(
        "gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY"
    ),
    "anthropic": ProviderSpec("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    "mock": ProviderSpec("mock", None, None),
}


def provider_spec(name: str) -> ProviderSpec | None:
    return PROVIDERS.get(name)


# Providers LiteLLM reads a bare model name as (``claude-3-5-haiku`` is Anthropic's); any other
# bare name is OpenAI's, as in LiteLLM (``gpt-4o-mini``, ``o3``, ``gpt-3.5-turbo-1106``).
_BARE_NAME_PROVIDERS = {"claude-": "anthropic", "gemini-": "gemini", "command-": "cohere"}

# Providers with their own protocol (no adapter yet), and what to write instead when the
# endpoint also speaks OpenAI's protocol.
NOT_YET_SUPPORTED_HINTS = {
    "ollama": "Ollama also serves the OpenAI protocol: model: openai/<model> with "
              "api_base: http://localhost:11434/v1",
    "ollama_chat": "Ollama also serves the OpenAI protocol: model: openai/<model> with "
                   "api_base: http://localhost:11434/v1",
    "vllm": "a vLLM server speaks the OpenAI protocol: hosted_vllm/<model> with its api_base",
}


def split_model(model: str) -> tuple[str, str]:
    """``litellm_params.model`` as (provider prefix, the provider's model name)."""
    if "/" in model:
        provider, name = model.split("/", 1)
        return provider, name
    for prefix, provider in _BARE_NAME_PROVIDERS.items():
        if model.startswith(prefix):
            return provider, model
    return "openai", model

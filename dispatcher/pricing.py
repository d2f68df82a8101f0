"""Cost of a provider call: deployment prices from config, else the shipped price table.

An unknown price is ``None`` (unknown), never zero: totals count such calls separately.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from dispatcher.deployments import Deployment
from dispatcher.providers.base import Usage


@dataclass(frozen=True, slots=True)
class Price:
    input_per_token: float
    output_per_token: float
    cached_input_per_token: float | None = None  # prompt-cache reads
    cache_write_per_token: float | None = None  # prompt-cache writes (Anthropic)

    def cost(self, usage: Usage) -> float:
        """Prompt tokens read from or written to the cache at their own prices (when known,
        else at the input price), the rest of the prompt at the input price."""
        cached = usage.cached_tokens or 0 if self.cached_input_per_token is not None else 0
        written = usage.cache_creation_tokens or 0 if self.cache_write_per_token is not None else 0
        uncached_prompt = max(0, usage.prompt_tokens - cached - written)
        total = uncached_prompt * self.input_per_token + usage.completion_tokens * self.output_per_token
        if cached:
            total += cached * (self.cached_input_per_token or 0.0)
        if written:
            total += written * (self.cache_write_per_token or 0.0)
        return total


# Claude list prices in USD per million tokens: (input, 5-minute cache write, cache read,
# output). Checked 2026-11-30 against Anthropic's pricing page
# (https://platform.claude.com/docs/en/about-claude/pricing) and, for Opus 5.5, Sonnet 5.5 and
# Sonnet 5, their model pages (https://platform.claude.com/docs/en/models/<model>/overview);
# Sonnet 5.5's cache read is the $0.10 it was cut to on 2026-10-07. Standard tier only: 1-hour
# cache writes (2x input), batch (half price), long-context and regional (inference_geo) rates
# are not modelled. Claude Haiku 5.5 is left out: its price depends on each prompt's length
# (up to 100k tokens, or more), so set input_cost_per_token / output_cost_per_token for it.
CLAUDE_PRICES_PER_MTOK: dict[str, tuple[float, float, float, float]] = {
    "claude-fable-5-1": (10.0, 12.5, 0.25, 50.0),
    "claude-mythos-5-1": (10.0, 12.5, 0.25, 50.0),
    "claude-fable-5": (10.0, 12.5, 1.0, 50.0),
    "claude-mythos-5": (10.0, 12.5, 1.0, 50.0),
    "claude-opus-5-5": (4.0, 5.0, 0.20, 20.0),
    "claude-opus-5": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-8": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-7": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-6": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-5": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-1": (15.0, 18.75, 1.50, 75.0),
    "claude-opus-4": (15.0, 18.75, 1.50, 75.0),
    "claude-opus-4-0": (15.0, 18.75, 1.50, 75.0),
    "claude-sonnet-5-5": (2.0, 2.5, 0.10, 10.0),
    "claude-sonnet-5": (2.0, 2.5, 0.20, 10.0),
    "claude-sonnet-4-6": (3.0, 3.75, 0.30, 15.0),
    "claude-sonnet-4-5": (3.0, 3.75, 0.30, 15.0),
    "claude-sonnet-4": (3.0, 3.75, 0.30, 15.0),
    "claude-sonnet-4-0": (3.0, 3.75, 0.30, 15.0),
    "claude-3-7-sonnet": (3.0, 3.75, 0.30, 15.0),
    "claude-3-5-sonnet": (3.0, 3.75, 0.30, 15.0),
    "claude-haiku-4-5": (1.0, 1.25, 0.10, 5.0),
    "claude-3-5-haiku": (0.80, 1.0, 0.08, 4.0),
    "claude-3-opus": (15.0, 18.75, 1.50, 75.0),
    "claude-3-haiku": (0.25, 0.30, 0.03, 1.25),
}


# Embedding models in USD per million input tokens; they bill no output. Standard tier (the
# Batch APIs halve them, not modelled). OpenAI: https://platform.openai.com/docs/pricing
# (embeddings table); Gemini: https://ai.google.dev/gemini-api/docs/pricing. Checked
# 2026-11-30 against secondary trackers quoting those pages in April-May 2026 (the vendors'
# pages were not reachable from here): re-check when they matter.
EMBEDDING_PRICES_PER_MTOK: dict[str, float] = {
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
    "gemini-embedding-001": 0.15,
}


def _claude_prices() -> dict[str, Price]:
    return {
        name: Price(input_ / 1e6, output / 1e6, read / 1e6, write / 1e6)
        for name, (input_, write, read, output) in CLAUDE_PRICES_PER_MTOK.items()
    }


@lru_cache(maxsize=1)
def price_table() -> dict[str, Price]:
    """Model name -> price, from ``dispatcher/data/prices.json`` and the Claude and embedding
    prices above."""
    raw = json.loads(resources.files("dispatcher.data").joinpath("prices.json").read_text())
    table = {}
    for name, entry in raw["models"].items():
        table[name] = Price(
            entry["input_cost_per_token"],
            entry["output_cost_per_token"],
            entry.get("cache_read_input_token_cost"),
            entry.get("cache_creation_input_token_cost"),
        )
    table.update(_claude_prices())
    table.update({name: Price(per_mtok / 1e6, 0.0) for name, per_mtok in EMBEDDING_PRICES_PER_MTOK.items()})
    return table


# Dated snapshots cost what their family does: "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022",
# and OpenAI's older month-day form "gpt-3.5-turbo-0125", "gpt-4-0613". Snapshots priced apart
# from their family ("gpt-3.5-turbo-1106", "gpt-4o-2024-05-13") have their own table entry,
# which the exact name finds first. A family is only ever the name minus its suffix, so a
# suffix never lends a price to another family ("gpt-4-0613" is gpt-4, never gpt-4-turbo).
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


def price_for(deployment: Deployment) -> Price | None:
    """The deployment's own prices when configured, else the table's entry for its model."""
    if deployment.adapter == "mock" and deployment.input_cost_per_token is None and deployment.output_cost_per_token is None:
        return Price(0.0, 0.0)
    # An Azure deployment's model name is the deployment's; model_info.base_model names the model.
    table = table_price(deployment.provider, deployment.base_model or deployment.provider_model)
    given_in, given_out = deployment.input_cost_per_token, deployment.output_cost_per_token
    if given_in is None and given_out is None:
        return table
    # A half-set price takes the other half from the table; if the table does not know it,
    # the price is unknown (never silently free).
    input_price = given_in if given_in is not None else (table.input_per_token if table else None)
    output_price = given_out if given_out is not None else (table.output_per_token if table else None)
    if input_price is None or output_price is None:
        return None
    # Cache prices follow the table's input price; a configured input price stands for all
    # prompt tokens.
    cached = table.cached_input_per_token if table and given_in is None else None
    written = table.cache_write_per_token if table and given_in is None else None
    return Price(input_price, output_price, cached, written)


# The providers' batch APIs bill half the list price, prompt-cache reads and writes included:
# OpenAI's Batch API ("50% discount on inputs and outputs",
# https://platform.openai.com/docs/guides/batch), Azure OpenAI's global batch (50% of global
# standard), Anthropic's Message Batches ("50% of standard API prices",
# https://platform.claude.com/docs/en/build-with-claude/batch-processing). Checked 2026-11-30.
# A deployment's input_cost_per_token_batches / output_cost_per_token_batches (LiteLLM's
# names) replace it.
BATCH_DISCOUNT = {"openai": 0.5, "azure": 0.5, "anthropic": 0.5}
BATCH_PRICES_CHECKED = "2026-11-30"


def batch_price_for(deployment: Deployment) -> Price | None:
    """What a line of the deployment's provider batch costs per token."""
    given_in, given_out = deployment.input_cost_per_token_batches, deployment.output_cost_per_token_batches
    realtime = price_for(deployment)
    if given_in is not None and given_out is not None:
        return Price(given_in, given_out)
    if realtime is None:
        return None
    share = BATCH_DISCOUNT.get(deployment.adapter, 0.5)
    return Price(
        given_in if given_in is not None else realtime.input_per_token * share,
        given_out if given_out is not None else realtime.output_per_token * share,
        None if realtime.cached_input_per_token is None else realtime.cached_input_per_token * share,
        None if realtime.cache_write_per_token is None else realtime.cache_write_per_token * share,
    )


def table_price(provider: str, model: str) -> Price | None:
    """The shipped price of ``provider/model``, trying the provider-qualified name first."""
    table = price_table()
    undated = _DATE_SUFFIX.sub("", model)
    # Gateways (openrouter/anthropic/claude-3.5-sonnet) name the vendor's model after a slash.
    bare = undated.rsplit("/", 1)[-1]
    for name in (f"{provider}/{model}", model, f"{provider}/{undated}", undated, bare, bare.replace(".", "-")):
        if name in table:
            return table[name]
    return None


def price_table_date() -> str:
    return json.loads(resources.files("dispatcher.data").joinpath("prices.json").read_text())["checked"]

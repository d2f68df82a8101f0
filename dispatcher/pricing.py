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
    cached_input_per_token: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = usage.cached_tokens or 0
        if self.cached_input_per_token is None:
            cached = 0
        uncached_prompt = max(0, usage.prompt_tokens - cached)
        total = uncached_prompt * self.input_per_token + usage.completion_tokens * self.output_per_token
        if cached:
            total += cached * (self.cached_input_per_token or 0.0)
        return total


@lru_cache(maxsize=1)
def price_table() -> dict[str, Price]:
    """Model name -> price, from ``dispatcher/data/prices.json``."""
    raw = json.loads(resources.files("dispatcher.data").joinpath("prices.json").read_text())
    table = {}
    for name, entry in raw["models"].items():
        table[name] = Price(
            entry["input_cost_per_token"],
            entry["output_cost_per_token"],
            entry.get("cache_read_input_token_cost"),
        )
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
    table = table_price(deployment.provider, deployment.provider_model)
    given_in, given_out = deployment.input_cost_per_token, deployment.output_cost_per_token
    if given_in is None and given_out is None:
        return table
    # A half-set price takes the other half from the table; if the table does not know it,
    # the price is unknown (never silently free).
    input_price = given_in if given_in is not None else (table.input_per_token if table else None)
    output_price = given_out if given_out is not None else (table.output_per_token if table else None)
    if input_price is None or output_price is None:
        return None
    cached = table.cached_input_per_token if table and given_in is None else None
    return Price(input_price, output_price, cached)


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

"""Bedrock list prices, in one place, for the estimated cost shown under each answer.

USD per one million tokens, on-demand, US East (N. Virginia), as published on
https://aws.amazon.com/bedrock/pricing/ in October 2025 (`PRICES_AS_OF`). Other regions, batch
mode, prompt caching and provisioned throughput cost differently, and prices change: the figure
shown in the app is an estimate, labelled as one. Update the table and the date together.

Keys are base model ids. Cross-region inference profile ids (`us.`, `eu.`, `apac.`, `global.` ...)
and version suffixes are matched to them by `price_of`.
"""

from __future__ import annotations

import math
from datetime import date
from typing import NamedTuple

from .wire.bedrock import base_model_id

PRICES_AS_OF = date(2025, 10, 20)


class Price(NamedTuple):
    input_per_m: float
    output_per_m: float


BEDROCK_PRICES: dict[str, Price] = {
    # Anthropic
    "anthropic.claude-3-haiku-20240307-v1:0": Price(0.25, 1.25),
    "anthropic.claude-3-5-haiku-20241022-v1:0": Price(0.80, 4.00),
    "anthropic.claude-haiku-4-5-20251001-v1:0": Price(1.00, 5.00),
    "anthropic.claude-3-5-sonnet-20240620-v1:0": Price(3.00, 15.00),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": Price(3.00, 15.00),
    "anthropic.claude-3-7-sonnet-20250219-v1:0": Price(3.00, 15.00),
    "anthropic.claude-sonnet-4-20250514-v1:0": Price(3.00, 15.00),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": Price(3.00, 15.00),
    "anthropic.claude-3-opus-20240229-v1:0": Price(15.00, 75.00),
    "anthropic.claude-opus-4-20250514-v1:0": Price(15.00, 75.00),
    "anthropic.claude-opus-4-1-20250805-v1:0": Price(15.00, 75.00),
    # Amazon
    "amazon.nova-micro-v1:0": Price(0.035, 0.14),
    "amazon.nova-lite-v1:0": Price(0.06, 0.24),
    "amazon.nova-pro-v1:0": Price(0.80, 3.20),
    "amazon.nova-premier-v1:0": Price(2.50, 12.50),
    "amazon.titan-text-lite-v1": Price(0.15, 0.20),
    "amazon.titan-text-express-v1": Price(0.20, 0.60),
    "amazon.titan-text-premier-v1:0": Price(0.50, 1.50),
    # Meta
    "meta.llama3-8b-instruct-v1:0": Price(0.30, 0.60),
    "meta.llama3-70b-instruct-v1:0": Price(2.65, 3.50),
    "meta.llama3-1-8b-instruct-v1:0": Price(0.22, 0.22),
    "meta.llama3-1-70b-instruct-v1:0": Price(0.72, 0.72),
    "meta.llama3-1-405b-instruct-v1:0": Price(2.40, 2.40),
    "meta.llama3-2-1b-instruct-v1:0": Price(0.10, 0.10),
    "meta.llama3-2-3b-instruct-v1:0": Price(0.15, 0.15),
    "meta.llama3-2-11b-instruct-v1:0": Price(0.16, 0.16),
    "meta.llama3-2-90b-instruct-v1:0": Price(0.72, 0.72),
    "meta.llama3-3-70b-instruct-v1:0": Price(0.72, 0.72),
    "meta.llama4-scout-17b-instruct-v1:0": Price(0.17, 0.66),
    "meta.llama4-maverick-17b-instruct-v1:0": Price(0.24, 0.97),
    # Mistral AI
    "mistral.mistral-7b-instruct-v0:2": Price(0.15, 0.20),
    "mistral.mixtral-8x7b-instruct-v0:1": Price(0.45, 0.70),
    "mistral.mistral-small-2402-v1:0": Price(1.00, 3.00),
    "mistral.mistral-large-2402-v1:0": Price(4.00, 12.00),
    "mistral.mistral-large-2407-v1:0": Price(2.00, 6.00),
    "mistral.pixtral-large-2502-v1:0": Price(2.00, 6.00),
    # AI21 Labs
    "ai21.jamba-1-5-mini-v1:0": Price(0.20, 0.40),
    "ai21.jamba-1-5-large-v1:0": Price(2.00, 8.00),
    # Cohere (Command R family; Command text v14 reached end of life on 12 Aug 2025)
    "cohere.command-r-v1:0": Price(0.50, 1.50),
    "cohere.command-r-plus-v1:0": Price(3.00, 15.00),
    # DeepSeek, OpenAI open-weight models
    "deepseek.r1-v1:0": Price(1.35, 5.40),
    "openai.gpt-oss-20b-1:0": Price(0.07, 0.30),
    "openai.gpt-oss-120b-1:0": Price(0.15, 0.60),
}


def price_of(model: str) -> Price | None:
    base = base_model_id(model)
    if base in BEDROCK_PRICES:
        return BEDROCK_PRICES[base]
    # "…-v1:0" and "…-v1" (and a context-window suffix like ":200k") name the same model and price.
    stem = base.split(":", 1)[0]
    for key, price in BEDROCK_PRICES.items():
        if key.split(":", 1)[0] == stem:
            return price
    return None


def cost(provider: str, model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """Estimated USD for one request, or None when we have no price (not Bedrock, unknown model)."""
    if provider != "bedrock":
        return None
    price = price_of(model)
    if price is None:
        return None
    return ((input_tokens or 0) * price.input_per_m + (output_tokens or 0) * price.output_per_m) / 1_000_000


def format_cost(usd: float) -> str:
    """Small amounts keep two significant digits: $0.00042, $0.013, $1.20."""
    if usd == 0:
        return "$0"
    if usd < 1e-6:
        return "<$0.000001"
    decimals = max(2, 1 - math.floor(math.log10(usd)))
    return f"${usd:.{decimals}f}"

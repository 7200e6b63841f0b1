"""The Bedrock price table and the cost shown under answers."""

from __future__ import annotations

import pytest

from response_streaming.pricing import BEDROCK_PRICES, PRICES_AS_OF, base_model_id, cost, format_cost, price_of
from response_streaming.ui.format import metrics_line


def test_every_catalogue_model_has_a_price():
    catalog = pytest.importorskip("response_streaming.providers.bedrock_catalog")
    missing = [m.id for m in catalog.MODELS if price_of(m.id) is None]
    assert missing == [], f"add prices for {missing} (and update PRICES_AS_OF)"


def test_the_table_is_dated_and_plausible():
    assert PRICES_AS_OF.year >= 2025
    for model, price in BEDROCK_PRICES.items():
        assert 0 < price.input_per_m <= price.output_per_m <= 100, model


def test_profiles_arns_and_version_suffixes_find_the_base_price():
    haiku = BEDROCK_PRICES["anthropic.claude-3-5-haiku-20241022-v1:0"]
    assert base_model_id("us.anthropic.claude-3-5-haiku-20241022-v1:0") == "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert price_of("eu.anthropic.claude-3-5-haiku-20241022-v1:0") == haiku
    assert (
        price_of("arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0") == haiku
    )
    assert price_of("amazon.nova-lite-v1") == BEDROCK_PRICES["amazon.nova-lite-v1:0"]
    assert price_of("acme.unknown-model-v1:0") is None


def test_cost_is_per_million_tokens_and_only_for_bedrock():
    # Nova Lite: $0.06 in, $0.24 out per million tokens.
    assert cost("bedrock", "amazon.nova-lite-v1:0", 1_000_000, 1_000_000) == pytest.approx(0.30)
    assert cost("bedrock", "us.amazon.nova-lite-v1:0", 2000, 500) == pytest.approx(0.00024)
    assert cost("local", "amazon.nova-lite-v1:0", 2000, 500) is None
    assert cost("bedrock", "acme.unknown", 2000, 500) is None


def test_costs_read_well():
    assert [format_cost(x) for x in (0, 0.00042, 0.013, 0.1234, 2.5)] == ["$0", "$0.00042", "$0.013", "$0.12", "$2.50"]


def test_the_metrics_line_shows_speed_tokens_and_cost():
    m = {"ttft_ms": 210, "tokens_per_s": 38.46, "input_tokens": 2000, "output_tokens": 500}
    line = metrics_line(m, "bedrock", "amazon.nova-lite-v1:0")
    assert (
        line == "first token 210 ms · 38.5 tokens/s · 2000 in / 500 out · ≈ $0.00024 · amazon.nova-lite-v1:0 (bedrock)"
    )
    live = metrics_line({"ttft_ms": 210, "output_tokens": 500}, "bedrock", "amazon.nova-lite-v1:0", live=True)
    assert live.startswith("streaming · ") and "≈ $0.00012 so far" in live  # input tokens come with the end
    assert "$" not in metrics_line(m, "local", "gemma.gguf")

"""The table of native InvokeModel formats. Adding a family: write its module (a `Family` subclass,
see `common.Family`), then add it here; the provider, `serve` and the tests' fake all read this table."""

from __future__ import annotations

from . import anthropic, cohere, deepseek, gptoss, meta, mistral, nova, titan
from .common import Family, base_model_id

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        anthropic.FAMILY,
        meta.FAMILY,
        mistral.FAMILY,
        titan.FAMILY,
        nova.FAMILY,
        cohere.FAMILY,
        deepseek.FAMILY,
        gptoss.FAMILY,
    )
}


def family_of(model_id: str) -> Family | None:
    """The native format of a model id (bare, profile or ARN), or None if no family claims it."""
    base = base_model_id(model_id)
    return next((f for f in FAMILIES.values() if f.matches(base)), None)

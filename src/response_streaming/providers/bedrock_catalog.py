"""Which Bedrock models we know: ids, families, the default, and retired ids with their replacements.

Bedrock model ids look like `amazon.nova-lite-v1:0`; a cross-region inference profile puts a
geography in front (`us.`, `eu.`, `apac.`, `global.`, ...), and an ARN may wrap either. The family
(`wire.bedrock.family_of`) decides the native request and chunk format of
InvokeModelWithResponseStream; ConverseStream works the same for all of them.

The list is a guide, not a gate: an id that is not listed is still sent to Bedrock (new models
appear every month), only retired ids are refused before the call, with a replacement named.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelNotFound
from ..wire.bedrock.common import PROFILE_PREFIXES, base_model_id

# Amazon Nova Lite: current, cheap, fast, on-demand in the main regions, and usable without the
# Anthropic use-case form or a Marketplace subscription, so a fresh account can call it at once.
DEFAULT_MODEL = "amazon.nova-lite-v1:0"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    family: str
    name: str
    #: True when on-demand calls need a cross-region inference profile id (`us.<id>`) instead.
    profile_required: bool = False


@dataclass(frozen=True, slots=True)
class Retired:
    date: str  # ISO date Bedrock stopped serving it
    replacement: str


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("amazon.nova-micro-v1:0", "nova", "Amazon Nova Micro"),
    ModelInfo("amazon.nova-lite-v1:0", "nova", "Amazon Nova Lite"),
    ModelInfo("amazon.nova-pro-v1:0", "nova", "Amazon Nova Pro"),
    ModelInfo("amazon.nova-premier-v1:0", "nova", "Amazon Nova Premier", profile_required=True),
    ModelInfo("anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic", "Claude Haiku 4.5", profile_required=True),
    ModelInfo("anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic", "Claude Sonnet 4.5", profile_required=True),
    ModelInfo("anthropic.claude-sonnet-4-20250514-v1:0", "anthropic", "Claude Sonnet 4", profile_required=True),
    ModelInfo("anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic", "Claude 3.5 Haiku", profile_required=True),
    ModelInfo("anthropic.claude-3-haiku-20240307-v1:0", "anthropic", "Claude 3 Haiku"),
    ModelInfo("meta.llama3-3-70b-instruct-v1:0", "meta", "Llama 3.3 70B Instruct", profile_required=True),
    ModelInfo("meta.llama3-1-8b-instruct-v1:0", "meta", "Llama 3.1 8B Instruct"),
    ModelInfo("meta.llama3-8b-instruct-v1:0", "meta", "Llama 3 8B Instruct"),
    ModelInfo("mistral.mistral-large-2402-v1:0", "mistral", "Mistral Large (24.02)"),
    ModelInfo("mistral.mixtral-8x7b-instruct-v0:1", "mistral", "Mixtral 8x7B Instruct"),
    ModelInfo("mistral.mistral-7b-instruct-v0:2", "mistral", "Mistral 7B Instruct"),
    ModelInfo("amazon.titan-text-premier-v1:0", "titan", "Amazon Titan Text Premier"),
    ModelInfo("amazon.titan-text-express-v1", "titan", "Amazon Titan Text Express"),
    ModelInfo("amazon.titan-text-lite-v1", "titan", "Amazon Titan Text Lite"),
)

# The lab was written for Cohere Command; Bedrock no longer offers a Cohere text-generation model,
# so the replacement is the default, which needs no extra sign-up.
RETIRED: dict[str, Retired] = {
    "cohere.command-text-v14": Retired("2025-08-12", DEFAULT_MODEL),
}


def info(model_id: str) -> ModelInfo | None:
    mid = base_model_id(model_id)
    return next((m for m in MODELS if m.id == mid), None)


def retired_message(model_id: str, when: Retired) -> str:
    return (
        f"The Bedrock model {model_id} was retired on {when.date} and no longer answers. "
        f"Use {when.replacement} instead (--model {when.replacement}, or RS_MODEL={when.replacement})."
    )


def check_model(model_id: str) -> str:
    """Return the id to call, or raise `ModelNotFound` naming a replacement for a retired one."""
    mid = model_id.strip() or DEFAULT_MODEL
    when = RETIRED.get(base_model_id(mid))
    if when:
        raise ModelNotFound(retired_message(mid, when))
    return mid


def profile_id_for(model_id: str, region: str) -> str:
    """The system-defined inference profile id a region would use for `model_id` (`us.` in us-east-1)."""
    if model_id.startswith(PROFILE_PREFIXES) or model_id.startswith("arn:"):
        return model_id
    geo = region.split("-", 1)[0] if region else "us"
    prefix = {"us": "us", "eu": "eu", "ap": "apac", "ca": "us", "sa": "us"}.get(geo, "global")
    return f"{prefix}.{model_id}"

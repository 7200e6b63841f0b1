"""Providers: each turns (messages, params) into typed events. `PROVIDERS` is the one table of them.

Settings, the CLI's choices, the sidebar and the install hints all read this table, so adding a
provider is one row here and one module. Factories are "module:callable" strings imported on
use, so that a front end using Bedrock never loads llama.cpp, and the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Provider


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str  # the value of RS_PROVIDER / --provider
    label: str  # what the sidebar shows
    extra: str | None  # the pip extra that installs its packages (None: nothing beyond the base install)
    factory: str  # "module:callable" (relative to this package) taking Settings, returning a Provider

    def make(self, settings: Settings) -> Provider:
        module, _, attr = self.factory.partition(":")
        target = import_module(f"{__name__}.{module}")
        for part in attr.split("."):
            target = getattr(target, part)
        return target(settings)  # type: ignore[operator]

    @property
    def install(self) -> str:
        """The command that installs what this provider needs."""
        return f"pip install 'response-streaming[{self.extra or 'all'}]'"


PROVIDERS: tuple[ProviderInfo, ...] = (
    ProviderInfo("local", "Local (embedded llama.cpp)", "local", "local:LocalProvider"),
    ProviderInfo("bedrock", "Amazon Bedrock", "bedrock", "bedrock:BedrockProvider"),
    ProviderInfo("openai", "OpenAI-compatible server", "openai", "openai_compat:OpenAICompatProvider"),
    ProviderInfo("replay", "Replay (scripted, for tests)", None, "replay:ReplayProvider.from_settings"),
)

NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS)


def provider_info(name: str) -> ProviderInfo:
    for info in PROVIDERS:
        if info.name == name:
            return info
    raise ConfigError(f"Unknown provider {name!r}: use {', '.join(NAMES[:-1])} or {NAMES[-1]}.")


def make_provider(settings: Settings) -> Provider:
    return provider_info(settings.provider).make(settings)

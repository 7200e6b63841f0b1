"""Providers: each turns (messages, params) into typed events. `make_provider` picks one from settings.

Imports are lazy so that a front end using Bedrock never loads llama.cpp, and the reverse.
"""
from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from ..events import Provider


def make_provider(settings: Settings) -> Provider:
    if settings.provider == "local":
        from .local import LocalProvider
        return LocalProvider(settings)
    if settings.provider == "replay":
        from .replay import ReplayProvider
        return ReplayProvider.from_settings(settings)
    if settings.provider == "bedrock":
        from .bedrock import BedrockProvider
        return BedrockProvider(settings)
    if settings.provider == "openai":
        from .openai_compat import OpenAICompatProvider
        return OpenAICompatProvider(settings)
    raise ConfigError(f"Unknown provider {settings.provider!r}: use local, bedrock, openai or replay.")

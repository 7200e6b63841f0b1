"""LangChain's own standard suites for chat models (`langchain-tests`), run on our chat model over the
replay provider and over the embedded model.

Skipped only where a feature is not ours to offer: tool calling, structured output, JSON mode and
non-text inputs (none of our providers takes them), and overriding the model per call (a provider
serves one model).
"""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from response_streaming.langchain_model import ChatResponseStreaming, StreamingChatModel
from response_streaming.providers.replay import ReplayProvider


class _Ours:
    provider: object

    @property
    def chat_model_class(self) -> type[ChatResponseStreaming]:
        return ChatResponseStreaming

    @property
    def chat_model_params(self) -> dict:
        return {"provider": self.provider}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False


class TestReplayUnit(_Ours, ChatModelUnitTests):
    provider = ReplayProvider(text="Hello there, friend.")

    @pytest.mark.xfail(
        strict=True,
        reason="a provider serves one model: a per-call `model` is not used, so traces "
        "report the model that really answered",
    )
    def test_standard_params_model_override(self, model) -> None:
        super().test_standard_params_model_override(model)


class TestReplayIntegration(_Ours, ChatModelIntegrationTests):
    provider = ReplayProvider(text="Hello there, friend.")


class TestEmbeddedIntegration(_Ours, ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _embedded(self, local_provider):
        self.provider = local_provider

    @property
    def chat_model_params(self) -> dict:
        return {"provider": self.provider, "max_tokens": 8}


def test_the_first_name_still_works():
    assert StreamingChatModel is ChatResponseStreaming

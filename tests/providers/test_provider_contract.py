"""The provider contract (`events.Provider`), checked the same way on every provider we ship.

- local: the embedded llama.cpp model, really generating;
- replay: the scripted provider;
- bedrock: real boto3 against the loopback fake Bedrock (real event-stream bytes, `bedrock_fake.py`);
- openai: the OpenAI-compatible provider against llama-cpp-python's own server.

Each must: stream text first, then `Usage`, then `Finish` last (nothing after it); report token
counts (where the upstream gives them); release its upstream when the consumer abandons the stream
(the next request is served); and fail with one of our errors, whose message is one line, safe to
show, and names no secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import get_args

import pytest

from bedrock_fake import FakeBedrock, converse_reply, error_reply
from conftest import LLAMA_SERVER_KEY
from response_streaming.config import Settings
from response_streaming.errors import ResponseStreamingError
from response_streaming.events import Finish, Message, Params, Provider, StopReason, TextDelta, Usage
from response_streaming.providers import NAMES, make_provider
from response_streaming.providers.replay import ReplayProvider
from response_streaming.recorder import Recorder

ASK = [Message("user", "Write one sentence about the sea.")]
PARAMS = Params(max_tokens=8, temperature=0.0)


@dataclass
class Case:
    provider: Provider
    before: Callable[[], None] = lambda: None  # runs before each stream (the fake Bedrock needs its answer scripted)
    failing: Callable[[], Iterator] = field(default=lambda: iter(()))  # a stream that fails
    secrets: tuple[str, ...] = ()  # what an error message must never contain
    reports_usage: bool = True  # False where the upstream itself sends no token counts

    def stream(self, params: Params = PARAMS) -> Iterator:
        self.before()
        return self.provider.stream(ASK, params)


@pytest.fixture()
def aws_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def local_case(request) -> Case:
    provider = request.getfixturevalue("local_provider")
    # Far more than the context window holds: refused before generation, as a BadRequest.
    return Case(provider, failing=lambda: provider.stream([Message("user", "sea " * 20_000)], PARAMS))


def replay_case(request) -> Case:
    provider = ReplayProvider(text="The sea is wide and the waves are high and the wind is cold")
    broken = ReplayProvider(text="The sea is wide", fail_after=2)
    return Case(provider, failing=lambda: broken.stream(ASK, PARAMS))


def bedrock_case(request) -> Case:
    request.getfixturevalue("aws_env")
    fake = FakeBedrock().start()
    request.addfinalizer(fake.stop)
    settings = Settings(
        provider="bedrock", aws_region="us-east-1", bedrock_endpoint_url=fake.url, bedrock_max_attempts=1
    )
    provider = make_provider(settings)

    def failing() -> Iterator:
        fake.push(
            error_reply("AccessDeniedException", "You don't have access to the model with the specified model ID.")
        )
        return provider.stream(ASK, PARAMS)

    return Case(
        provider,
        before=lambda: fake.push(converse_reply(["The", " sea", " is", " wide"], stop="max_tokens")),
        failing=failing,
        secrets=("fake-secret-key",),
    )


def openai_case(request) -> Case:
    base = request.getfixturevalue("llama_server")
    provider = make_provider(Settings(provider="openai", openai_base_url=f"{base}/v1", openai_api_key=LLAMA_SERVER_KEY))
    wrong = make_provider(
        Settings(provider="openai", model="m", openai_base_url=f"{base}/v1", openai_api_key="sk-wrong-1")
    )
    # llama-cpp-python's server ignores `stream_options.include_usage`: it streams no token counts.
    return Case(
        provider,
        failing=lambda: wrong.stream(ASK, PARAMS),
        secrets=("sk-wrong-1", LLAMA_SERVER_KEY),
        reports_usage=False,
    )


CASES = {"local": local_case, "replay": replay_case, "bedrock": bedrock_case, "openai": openai_case}


def test_every_registered_provider_is_in_the_contract_suite():
    assert set(CASES) == set(NAMES)


@pytest.fixture(params=list(CASES))
def case(request) -> Case:
    return CASES[request.param](request)


def test_text_then_usage_then_finish_last(case):
    events = list(case.stream())
    kinds = [type(e).__name__ for e in events]
    assert isinstance(events[-1], Finish), kinds
    assert sum(isinstance(e, Finish) for e in events) == 1
    usages = [i for i, e in enumerate(events) if isinstance(e, Usage)]
    assert len(usages) == (1 if case.reports_usage else 0), kinds
    assert all(not isinstance(e, TextDelta) for e in events[usages[0] if usages else -1 :]), kinds
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.strip()


def test_finish_and_usage_say_what_happened(case):
    rec = Recorder(case.stream()).run()
    assert rec.status == "complete", rec.error
    assert rec.metrics.stop_reason in get_args(StopReason)
    if case.reports_usage:
        assert rec.metrics.input_tokens and rec.metrics.input_tokens > 0
    assert 0 < rec.metrics.output_tokens <= PARAMS.max_tokens  # counted by the Recorder where not reported


def test_abandoning_the_stream_releases_it(case):
    gen = case.stream(Params(max_tokens=32, temperature=0.0))
    first = next(e for e in gen if isinstance(e, TextDelta))
    gen.close()  # a Stop click or a closed tab
    assert first.text
    rec = Recorder(case.stream()).run()  # the model lock / connection was given back
    assert rec.status == "complete", rec.error


def test_errors_are_ours_and_safe_to_show(case):
    rec = Recorder(case.failing()).run()
    assert rec.status == "error"
    assert isinstance(rec.exception, ResponseStreamingError), repr(rec.exception)
    message = str(rec.exception)
    assert message and "\n" not in message and "Traceback" not in message
    assert not any(secret in message for secret in case.secrets)

"""`serve`'s OpenAI-compatible API and our own SSE endpoint, driven by real, unmodified clients
(`openai`, LangChain's `ChatOpenAI`, raw httpx) against uvicorn on a loopback port.

A scripted ReplayProvider gives a known text, so every client must receive exactly that text; the
real embedded model is driven in test_server_local.py.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time

import httpx
import openai
import pytest
from openai._streaming import SSEDecoder

from response_streaming.config import Settings
from response_streaming.errors import Throttled
from response_streaming.providers.replay import ReplayProvider, split_tokens
from response_streaming.server import create_app
from tests.conftest import http_client

TEXT = "Hello, wörld! ✓ Here is `code`,\n\nthen a second paragraph 🎉 with data: [DONE] inside.\n"
REPLAY = Settings(provider="replay")


class Tap:
    """Wraps a real provider and records what it produced and whether its stream was closed."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.model = inner, inner.name, inner.model
        self.runs: list[dict] = []

    def stream(self, messages, params):
        run = {"text": "", "closed": False, "events": 0}
        self.runs.append(run)
        inner = self.inner.stream(messages, params)
        try:
            for event in inner:
                run["events"] += 1
                run["text"] += getattr(event, "text", "")
                yield event
        finally:
            # Closed explicitly, as `yield from` does: a provider stream may be an object, not a generator
            # (the embedded model's), and a `for` loop alone leaves it to the garbage collector.
            if hasattr(inner, "close"):
                inner.close()
            run["closed"] = True


def wait_for(predicate, timeout: float = 30.0):
    """Poll until `predicate()` is truthy (the server finishes its bookkeeping after the client's read)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def server_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "response_streaming.server"]


@pytest.fixture()
def start(api_server, protocol):
    """`start(provider)` -> the base URL of a fresh server; the test's requests use `protocol` (each test
    runs over HTTP/1.1 and HTTP/2)."""

    def start(provider, settings: Settings = REPLAY, **kw) -> str:
        base = api_server(create_app(settings, provider, **kw))
        PROTOCOLS[base] = protocol
        return base

    return start


PROTOCOLS: dict[str, str] = {}


def http(base: str) -> httpx.Client:
    """An httpx client speaking the protocol the test runs over."""
    return http_client(PROTOCOLS.get(base, "HTTP/1.1"))


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0, http_client=http(base))


def test_openai_streams_exact_text_with_usage(start, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    base = start(ReplayProvider(text=TEXT))
    stream = client(base).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "say it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(split_tokens(TEXT))
    assert chunks[-1].model == "replay"
    line = wait_for(lambda: [ln for ln in server_lines(caplog) if "/v1/chat/completions" in ln])[0]
    for part in (
        "provider=replay",
        "model=replay",
        "ttft_ms=",
        f"tokens={len(split_tokens(TEXT))}",
        "tokens_per_s=",
        "outcome=complete",
        "status=200",
    ):
        assert part in line


def test_openai_whole_completion_and_models(start):
    base = start(ReplayProvider(text=TEXT))
    c = client(base)
    done = c.chat.completions.create(model="anything", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert done.choices[0].message.content == "".join(split_tokens(TEXT)[:4])
    assert done.choices[0].finish_reason == "length" and done.usage.completion_tokens == 4
    assert [m.id for m in c.models.list()] == ["replay"]


def test_raw_sse_reparsed_at_random_splits(start):
    base = start(ReplayProvider(text=TEXT))
    raw = (
        http(base)
        .post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "stream": True})
        .content
    )
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(raw)), 25))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        events = list(SSEDecoder().iter_bytes(iter(parts)))
        assert events[-1].data == "[DONE]"
        assert "".join(json.loads(e.data)["choices"][0]["delta"].get("content", "") for e in events[:-1]) == TEXT


def test_mid_stream_error_reaches_openai_client_without_done(start):
    base = start(ReplayProvider(text=TEXT, fail_after=3))
    got = []
    with pytest.raises(openai.APIError, match="injected fault"):
        for chunk in client(base).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "".join(split_tokens(TEXT)[:3])
    raw = (
        http(base)
        .post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "stream": True})
        .text
    )
    assert "[DONE]" not in raw.split("inside")[0] and not raw.rstrip().endswith("data: [DONE]")
    assert json.loads(raw.strip().split("data: ")[-1])["error"]["code"] == "StreamInterrupted"


def test_errors_in_openai_shape(start):
    base = start(ReplayProvider(text=TEXT, fail_after=0, error=Throttled("The local model is busy; try again.")))
    c = client(base)
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    assert err.value.status_code == 429 and err.value.body["type"] == "rate_limit_error"
    assert "busy" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="last message must be a non-empty 'user' message"):
        c.chat.completions.create(model="m", messages=[{"role": "assistant", "content": "x"}])
    # httpx's HTTP/2 client can't take an answer before its upload ends: 413 over h2 is in test_server_http2.py.
    big = httpx.post(
        f"{base}/v1/chat/completions",
        content=b'{"messages": "' + b"x" * (1 << 20) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["type"] == "invalid_request_error"

    def chunked():  # no Content-Length: the limit must hold on the bytes that arrive
        for _ in range(40):
            yield b"x" * 65536

    big = httpx.post(f"{base}/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert big.status_code == 413 and "larger than" in big.json()["error"]["message"]
    missing = http(base).get(f"{base}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_an_unexpected_failure_is_a_safe_500(start):
    class Broken:
        name, model = "broken", "broken"

        def stream(self, messages, params):
            raise RuntimeError("secret internals at /srv/app.py line 12")
            yield  # a generator, like every provider

    base = start(Broken())
    for stream in (True, False):
        r = http(base).post(
            f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "stream": stream}
        )
        assert r.status_code == 500
        assert "secret" not in r.text and "Traceback" not in r.text
        assert r.json()["error"]["type"] == "server_error"


def test_client_disconnect_stops_the_provider(start, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    tap = Tap(ReplayProvider(text="word " * 2000, rate=50))
    base = start(tap)
    # Closing the client closes the connection: httpx's HTTP/2 client sends no RST_STREAM for a response
    # closed early (test_server_http2.py sends one with the h2 library).
    with (
        http(base) as c,
        c.stream(
            "POST",
            f"{base}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 2000},
        ) as r,
    ):
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    wait_for(lambda: tap.runs[0]["closed"])
    assert tap.runs[0]["events"] < 2000
    line = wait_for(lambda: [ln for ln in server_lines(caplog) if "outcome=stopped" in ln])[0]
    assert "status=499" in line


def test_langchain_chat_openai_streams_exact_text(start):
    from langchain_openai import ChatOpenAI

    base = start(ReplayProvider(text=TEXT))
    llm = ChatOpenAI(
        base_url=f"{base}/v1",
        api_key="not-needed",
        model="gpt-4o-mini",
        streaming=True,
        stream_usage=True,
        max_retries=0,
    )
    chunks = list(llm.stream("say it"))
    assert "".join(c.content for c in chunks) == TEXT
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == len(split_tokens(TEXT))


def test_our_sse_endpoint(start):
    base = start(ReplayProvider(text=TEXT))
    raw = (
        http(base)
        .post(f"{base}/v1/stream", json={"messages": [{"role": "user", "content": "x"}], "params": {"max_tokens": 500}})
        .content
    )
    events = list(SSEDecoder().iter_bytes(iter([raw[i : i + 7] for i in range(0, len(raw), 7)])))
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == TEXT
    assert [e.event for e in events[-2:]] == ["usage", "finish"]
    assert json.loads(events[-1].data)["reason"] == "end_turn"
    bad = http(base).post(
        f"{base}/v1/stream", json={"messages": [{"role": "user", "content": "x"}], "params": {"temprature": 1}}
    )
    assert bad.status_code == 400 and "params.temprature is unknown" in bad.json()["error"]["message"]


def test_our_sse_endpoint_reports_a_broken_stream(start):
    base = start(ReplayProvider(text=TEXT, fail_after=2))
    raw = http(base).post(f"{base}/v1/stream", json={"messages": [{"role": "user", "content": "x"}]}).content
    events = list(SSEDecoder().iter_bytes(iter([raw])))
    # The two pieces that came before the break (pieces that arrive together share one event), then the error.
    assert {e.event for e in events[:-1]} == {"delta"} and events[-1].event == "error"
    assert "".join(json.loads(e.data)["text"] for e in events[:-1]) == "".join(split_tokens(TEXT)[:2])
    assert json.loads(events[-1].data)["type"] == "StreamInterrupted"


def test_concurrent_streams_each_get_their_own_text(start):
    base = start(ReplayProvider(text=TEXT, rate=200))
    results = []

    def one():
        s = client(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        results.append("".join(c.choices[0].delta.content or "" for c in s if c.choices))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [TEXT] * 4

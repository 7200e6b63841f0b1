"""`serve` over the real embedded model (llama.cpp, Gemma 3 270M): every API streams what the model
produced; a client that leaves frees the model at once; a full queue answers 429 / ThrottlingException.

`Tap` records what the real provider yielded, so "exactly the text the provider produced" is checked
against the provider itself, not against a guess. max_tokens stays small: the machine is shared.
"""

from __future__ import annotations

import json
import logging
import threading

import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from openai._streaming import SSEDecoder

from response_streaming.config import Settings
from response_streaming.server import create_app
from tests.server.test_server_openai import Tap, server_lines, wait_for


@pytest.fixture()
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def bedrock_client(base: str):
    return boto3.client(
        "bedrock-runtime", endpoint_url=base, region_name="us-east-1", config=Config(retries={"total_max_attempts": 1})
    )


def test_every_api_streams_what_the_model_produced(api_server, local_settings, local_provider, aws_env):
    tap = Tap(local_provider)
    base = api_server(create_app(local_settings, tap))
    prompt = "Name three colours."

    stream = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], max_tokens=12, stream=True
    )
    got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert got and got == tap.runs[-1]["text"]

    rt = bedrock_client(base)
    events = rt.converse_stream(
        modelId="amazon.nova-lite-v1:0",
        messages=[{"role": "user", "content": [{"text": prompt}]}],
        inferenceConfig={"maxTokens": 12},
    )["stream"]
    events = list(events)
    got = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert got and got == tap.runs[-1]["text"]
    assert events[-1]["metadata"]["usage"]["outputTokens"] <= 12 and "messageStop" in events[-2]

    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 12,
        "messages": [{"role": "user", "content": prompt}],
    }
    chunks = [
        json.loads(e["chunk"]["bytes"])
        for e in rt.invoke_model_with_response_stream(
            modelId="anthropic.claude-3-haiku-20240307-v1:0", body=json.dumps(body)
        )["body"]
    ]
    got = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert got and got == tap.runs[-1]["text"]
    assert chunks[-1]["type"] == "message_stop" and "amazon-bedrock-invocationMetrics" in chunks[-1]

    raw = httpx.post(
        f"{base}/v1/stream",
        json={"messages": [{"role": "user", "content": prompt}], "params": {"max_tokens": 12}},
        timeout=60,
    ).content
    events = list(SSEDecoder().iter_bytes(iter([raw])))
    got = "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")
    assert got and got == tap.runs[-1]["text"] and events[-1].event == "finish"
    assert all(run["closed"] for run in tap.runs)


class GatedTap(Tap):
    """A Tap that, after the first event, waits for `gate` before asking the model for more: the
    real generation is then paused mid-answer (model lock held) at a moment the test controls."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.gate = threading.Event()

    def stream(self, messages, params):
        for i, event in enumerate(super().stream(messages, params)):
            yield event
            if i == 0:
                self.gate.wait(60)


def test_disconnect_stops_generation_and_frees_the_model(api_server, local_settings, local_provider, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    tap = GatedTap(local_provider)
    app = create_app(local_settings, tap)
    base = api_server(app)
    prompt = {"messages": [{"role": "user", "content": "Write a long story about a ship."}], "max_tokens": 200}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json={**prompt, "stream": True}, timeout=60) as r:
        lines = (ln for ln in r.iter_lines() if ln.startswith("data: "))
        next(lines), next(lines)  # the role chunk and the first token: generation is under way
        assert local_provider.engine.busy()
    live = app.state.rs.generations
    wait_for(lambda: live and all(g.stopping for g in list(live)))  # the server saw the client leave
    tap.gate.set()  # let the model go on: the generation must stop at the very next token
    wait_for(lambda: tap.runs[0]["closed"])
    assert wait_for(lambda: not local_provider.engine.busy())
    assert tap.runs[0]["events"] == 2  # the first token, and the one in flight when it resumed
    line = wait_for(lambda: server_lines(caplog))[0]
    assert "outcome=stopped" in line and "provider=local" in line and "status=499" in line

    # The same prompt, not interrupted, runs longer: so the 2 above were cut short, not the whole answer.
    tap.gate.set()
    again = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="m", **prompt
    )
    assert again.choices[0].message.content == tap.runs[1]["text"] and tap.runs[1]["events"] > 2
    assert not live


def test_full_queue_answers_429_and_throttling_exception(api_server, local_settings, aws_env):
    from response_streaming.events import Message, Params
    from response_streaming.providers.local import LocalProvider

    # The same model with one slot and no waiting room: one generation under way fills it.
    provider = LocalProvider(Settings(**{**local_settings.model_dump(), "queue_size": 0, "local_parallel": 1}))
    base = api_server(create_app(local_settings, provider))
    holder = provider.stream([Message("user", "Tell a long story.")], Params(max_tokens=100))
    next(holder)  # a generation under way: the model is busy
    try:
        with pytest.raises(openai.RateLimitError) as err:
            openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True
            )
        assert err.value.status_code == 429 and "busy" in err.value.message
        assert err.value.body["type"] == "rate_limit_error"
        with pytest.raises(ClientError) as err:
            bedrock_client(base).converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    finally:
        holder.close()
    assert not provider.engine.busy()
    done = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert done.usage.completion_tokens >= 1

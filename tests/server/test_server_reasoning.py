"""`serve` passes thinking on, in each API's own shape, to unmodified clients: the `openai` SDK sees
`reasoning_content`, boto3 sees `reasoningContent` (Converse) and `thinking_delta` / `signature_delta`
(Anthropic invoke) with the signature intact and redacted bytes exact, our SSE an `event: reasoning`.
Requests that ask for thinking reach the provider. A scripted provider is the point here: the
thinking it streams is known exactly."""

from __future__ import annotations

import base64
import json
import os

import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from openai._streaming import SSEDecoder

import reasoning_fixtures as fx
from response_streaming.config import Settings
from response_streaming.events import Message, Params, ReasoningBlock, ReasoningDelta, TextDelta
from response_streaming.providers.bedrock import BedrockProvider
from response_streaming.providers.replay import ReplayProvider, split_tokens
from response_streaming.reasoning import blocks_of
from response_streaming.server import create_app
from response_streaming.wire.bedrock import FAMILIES, invoke

THINKING = (
    ReasoningDelta("The user asks 2+2."),
    ReasoningDelta(" That is 4."),
    ReasoningDelta(signature=fx.SIGNATURE),
    ReasoningDelta(redacted=fx.REDACTED),
)
ANSWER = "2 + 2 = 4."
N = len(split_tokens(ANSWER))  # the replay's pieces
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ASK = [{"role": "user", "content": [{"text": "What is 2+2?"}]}]


class Recording(ReplayProvider):
    """The replay, remembering what each request asked for."""

    def __init__(self, **kw) -> None:
        super().__init__(text=ANSWER, thinking=THINKING, **kw)
        self.asked: list[tuple[list[Message], Params]] = []

    def stream(self, messages, params):
        self.asked.append((list(messages), params))
        return super().stream(messages, params)


@pytest.fixture()
def serve(api_server, monkeypatch):
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

    def start(provider):
        return api_server(create_app(Settings(provider="replay"), provider))

    return start


def runtime(base: str):
    return boto3.client(
        "bedrock-runtime", endpoint_url=base, region_name="us-east-1", config=Config(retries={"total_max_attempts": 1})
    )


def test_openai_sdk_sees_reasoning_content(serve):
    provider = Recording()
    base = serve(provider)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": "2+2?"}], stream=True, reasoning_effort="high"
    )
    thought = answer = ""
    for chunk in stream:
        for choice in chunk.choices:
            thought += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            answer += choice.delta.content or ""
    assert (thought, answer) == ("The user asks 2+2. That is 4.", ANSWER)
    assert provider.asked[0][1].reasoning == "high"  # the request asked for thinking: passed on
    whole = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "2+2?"}])
    assert whole.choices[0].message.content == ANSWER
    assert whole.choices[0].message.model_extra["reasoning_content"] == "The user asks 2+2. That is 4."
    with pytest.raises(openai.BadRequestError, match="reasoning_effort"):
        client.chat.completions.create(model="any", messages=[{"role": "user", "content": "x"}], reasoning_effort="max")


def test_boto3_converse_stream_signature_and_redacted_bytes_then_answer_at_the_next_index(serve):
    provider = Recording()
    rt = runtime(serve(provider))
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "earlier", "signature": fx.SIGNATURE}}},
                {"reasoningContent": {"redactedContent": fx.REDACTED}},
                {"text": "4."},
            ],
        },
        {"role": "user", "content": [{"text": "And 3+3?"}]},
    ]
    resp = rt.converse_stream(
        modelId=CLAUDE,
        messages=history,
        inferenceConfig={"maxTokens": 300},
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 2000}},
    )
    events = list(resp["stream"])
    kinds = [(next(iter(e)), e[next(iter(e))].get("contentBlockIndex")) for e in events]
    assert kinds == [
        ("messageStart", None),
        ("contentBlockDelta", 0),
        ("contentBlockDelta", 0),
        ("contentBlockDelta", 0),
        ("contentBlockStop", 0),
        ("contentBlockDelta", 1),
        ("contentBlockStop", 1),
        *[("contentBlockDelta", 2)] * N,
        ("contentBlockStop", 2),
        ("messageStop", None),
        ("metadata", None),
    ]
    rc = [e["contentBlockDelta"]["delta"].get("reasoningContent") for e in events[1:6] if "contentBlockDelta" in e]
    assert rc == [
        {"text": "The user asks 2+2."},
        {"text": " That is 4."},
        {"signature": fx.SIGNATURE},
        {"redactedContent": fx.REDACTED},
    ]
    assert (
        "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e) == ANSWER
    )
    # What the request asked for went upstream: the budget as an effort, the signed history byte for byte.
    messages, params = provider.asked[0]
    assert params.reasoning == "medium"
    assert messages[1] == Message(
        "assistant", "4.", (ReasoningBlock("earlier", fx.SIGNATURE), ReasoningBlock(redacted=fx.REDACTED))
    )
    whole = rt.converse(modelId=CLAUDE, messages=ASK)["output"]["message"]["content"]
    assert whole == [
        {"reasoningContent": {"reasoningText": {"text": "The user asks 2+2. That is 4.", "signature": fx.SIGNATURE}}},
        {"reasoningContent": {"redactedContent": fx.REDACTED}},
        {"text": ANSWER},
    ]


def test_boto3_anthropic_invoke_thinking_and_signature_deltas(serve):
    rt = runtime(serve(Recording()))
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 300,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "2+2?"}],
    }
    chunks = [
        json.loads(e["chunk"]["bytes"])
        for e in rt.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))["body"]
    ]
    shape = [(c["type"], c.get("index"), (c.get("delta") or c.get("content_block") or {}).get("type")) for c in chunks]
    assert shape == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "redacted_thinking"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "text"),
        *[("content_block_delta", 2, "text_delta")] * N,
        ("content_block_stop", 2, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert chunks[4]["delta"]["signature"] == fx.SIGNATURE
    # Our own reader gets back exactly what the provider streamed (redacted bytes as Anthropic's data string).
    events = list(invoke.events(FAMILIES["anthropic"], chunks))
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [
        *THINKING[:3],
        ReasoningDelta(redacted=base64.b64encode(fx.REDACTED)),
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == ANSWER


@pytest.mark.parametrize("api", ["converse", "invoke"])
def test_our_bedrock_provider_through_serve_gets_the_same_thinking(serve, api):
    """Round trip: provider events -> serve's frames -> boto3 -> our BedrockProvider -> the same events."""
    base = serve(Recording())
    upstream = BedrockProvider(
        Settings(
            provider="bedrock",
            model=CLAUDE,
            bedrock_api=api,
            aws_region="us-east-1",
            bedrock_endpoint_url=base,
            bedrock_max_attempts=1,
        )
    )
    events = list(upstream.stream([Message("user", "2+2?")], Params(max_tokens=300, reasoning="low")))
    thinking = [e for e in events if isinstance(e, ReasoningDelta)]
    redacted = fx.REDACTED if api == "converse" else base64.b64encode(fx.REDACTED)  # Anthropic's data is a string
    assert thinking == [*THINKING[:3], ReasoningDelta(redacted=redacted)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == ANSWER


@pytest.mark.parametrize(
    "model, thought",
    [
        ("us.deepseek.r1-v1:0", "The user asks 2+2. That is 4."),
        ("openai.gpt-oss-120b-1:0", "The user asks 2+2. That is 4."),
    ],
)
def test_inline_families_write_their_tags(serve, model, thought):
    rt = runtime(serve(Recording()))
    body = (
        {"prompt": "2+2?", "max_tokens": 300}
        if "deepseek" in model
        else {
            "messages": [{"role": "user", "content": "2+2?"}],
            "max_completion_tokens": 300,
            "reasoning_effort": "low",
        }
    )
    chunks = [
        json.loads(e["chunk"]["bytes"])
        for e in rt.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]
    ]
    family = FAMILIES["deepseek" if "deepseek" in model else "openai"]
    text = "".join(family.parse_chunk(c).text for c in chunks)
    assert text == (
        f"{thought}</think>\n\n{ANSWER}" if "deepseek" in model else f"<reasoning>{thought}</reasoning>{ANSWER}"
    )


def test_our_sse_reasoning_event(serve):
    provider = Recording()
    base = serve(provider)
    ask = {"messages": [{"role": "user", "content": "x"}], "params": {"reasoning": "low"}}
    raw = httpx.post(f"{base}/v1/stream", json=ask).content
    assert provider.asked[0][1].reasoning == "low"
    events = list(SSEDecoder().iter_bytes(iter([raw])))
    thinking = [json.loads(e.data) for e in events if e.event == "reasoning"]
    # However the log batched them, the events give back the thinking exactly, redacted bytes included.
    deltas = [
        ReasoningDelta(t["text"], t.get("signature", ""), base64.b64decode(t.get("redacted", ""))) for t in thinking
    ]
    assert blocks_of(deltas) == blocks_of(THINKING)
    kinds = [e.event for e in events]
    assert kinds.index("delta") > max(i for i, k in enumerate(kinds) if k == "reasoning")
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == ANSWER

"""Asking for thinking, and sending an earlier turn's thinking back, per family (pure, then real boto3)."""

from __future__ import annotations

import base64

import pytest

import reasoning_fixtures as fx
from response_streaming.events import Message, Params, ReasoningBlock
from response_streaming.providers.openai_compat import chat_request
from response_streaming.wire.bedrock import FAMILIES, converse, family_of, invoke

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SIGNED = ReasoningBlock("I add them.", fx.SIGNATURE)
HISTORY = [
    Message("user", "What is 2+2?"),
    Message("assistant", "4.", (SIGNED, ReasoningBlock("unsigned musing"), ReasoningBlock(redacted=fx.REDACTED))),
    Message("user", "And 3+3?"),
]


def converse_req(model: str, params: Params, messages=HISTORY) -> dict:
    return converse.request(model, messages, params, family_of(model))


def test_claude_thinking_budget_on_top_of_the_answer_and_no_sampling_changes():
    req = converse_req(CLAUDE, Params(max_tokens=512, temperature=0.3, top_p=0.5, reasoning="medium"))
    assert req["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 4096}}
    assert req["inferenceConfig"] == {"maxTokens": 512 + 4096}  # budget_tokens < max_tokens, as Claude requires
    native = invoke.request_body(FAMILIES["anthropic"], CLAUDE, HISTORY, Params(max_tokens=100, reasoning="low"))
    assert native["thinking"] == {"type": "enabled", "budget_tokens": 1024} and native["max_tokens"] == 1124


@pytest.mark.parametrize(
    "model, fields",
    [
        ("us.amazon.nova-2-lite-v1:0", {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}}),
        ("openai.gpt-oss-120b-1:0", {"reasoning_effort": "high"}),
        ("us.deepseek.r1-v1:0", None),  # always reasons: no switch
        ("us.amazon.nova-lite-v1:0", None),  # Nova 1 can't
        ("meta.llama3-1-8b-instruct-v1:0", None),
    ],
)
def test_each_family_switch(model, fields):
    req = converse_req(model, Params(reasoning="high"))
    assert req.get("additionalModelRequestFields") == fields
    family = family_of(model)
    assert family is not None
    body = invoke.request_body(family, model, HISTORY, Params(reasoning="high"))
    assert all(body[k] == v for k, v in (fields or {}).items())


def test_no_reasoning_asked_sends_exactly_what_it_did():
    plain = [Message(m.role, m.content) for m in HISTORY]
    for model in (CLAUDE, "openai.gpt-oss-120b-1:0", "us.amazon.nova-2-lite-v1:0"):
        req = converse_req(model, Params())
        assert "additionalModelRequestFields" not in req
        if "claude" not in model:
            assert req == converse_req(model, Params(), plain)


def test_claude_history_keeps_signed_and_redacted_first_and_drops_unsigned():
    assistant = converse_req(CLAUDE, Params())["messages"][1]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": {"text": "I add them.", "signature": fx.SIGNATURE}}},
            {"reasoningContent": {"redactedContent": fx.REDACTED}},
            {"text": "4."},
        ],
    }
    native = invoke.request_body(FAMILIES["anthropic"], CLAUDE, HISTORY, Params())["messages"][1]["content"]
    assert native == [
        {"type": "thinking", "thinking": "I add them.", "signature": fx.SIGNATURE},
        {"type": "redacted_thinking", "data": base64.b64encode(fx.REDACTED).decode()},
        {"type": "text", "text": "4."},
    ]
    # Redacted thinking that came from Anthropic's native stream goes back as the very same string.
    ascii_block = Message("assistant", "4.", (ReasoningBlock(redacted=fx.REDACTED_DATA.encode()),))
    native = invoke.request_body(FAMILIES["anthropic"], CLAUDE, [HISTORY[0], ascii_block, HISTORY[2]], Params())
    assert native["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": fx.REDACTED_DATA}


@pytest.mark.parametrize("model", ["us.deepseek.r1-v1:0", "openai.gpt-oss-120b-1:0", "us.amazon.nova-2-lite-v1:0"])
def test_other_families_send_no_reasoning_back(model):
    req = converse_req(model, Params())
    assert req["messages"][1]["content"] == [{"text": "4."}]
    body = invoke.request_body(family_of(model), model, HISTORY, Params())
    assert "I add them" not in repr(body) and "musing" not in repr(body)


def test_openai_compatible_effort_and_no_reasoning_back():
    body = chat_request("m", HISTORY, Params(reasoning="low"))
    assert body["reasoning_effort"] == "low"
    assert body["messages"][1] == {"role": "assistant", "content": "4."}
    assert "reasoning_effort" not in chat_request("m", HISTORY, Params())


def test_signed_history_reaches_bedrock_byte_exact_through_boto3(monkeypatch, tmp_path):
    import os

    from bedrock_fake import FakeBedrock, converse_reply
    from response_streaming.config import Settings
    from response_streaming.providers import make_provider

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with FakeBedrock() as fake:
        fake.push(converse_reply(["6."]))
        provider = make_provider(
            Settings(
                provider="bedrock",
                model=CLAUDE,
                aws_region="us-east-1",
                bedrock_endpoint_url=fake.url,
                bedrock_max_attempts=1,
            )
        )
        list(provider.stream(HISTORY, Params(max_tokens=64, reasoning="low")))
        [req] = fake.requests
    assert req.body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    thought, redacted, text = req.body["messages"][1]["content"]
    assert thought["reasoningContent"]["reasoningText"] == {"text": "I add them.", "signature": fx.SIGNATURE}
    assert base64.b64decode(redacted["reasoningContent"]["redactedContent"]) == fx.REDACTED
    assert text == {"text": "4."}


def test_which_models_take_an_effort():
    from response_streaming.reasoning import takes_effort

    assert takes_effort("bedrock", CLAUDE) and takes_effort("bedrock", "us.amazon.nova-2-lite-v1:0")
    assert takes_effort("bedrock", "openai.gpt-oss-20b-1:0") and takes_effort("openai", "qwen3")
    assert not takes_effort("bedrock", "us.deepseek.r1-v1:0")  # always thinks: nothing to switch
    assert not takes_effort("bedrock", "amazon.nova-lite-v1:0") and not takes_effort("local", "smollm2")

"""Thinking through the generation log, on real SQLite and PostgreSQL: logged as `reasoning` chunks in
order, stored with its message byte for byte (signature, redacted bytes), reloaded into history for
the next request, exported marked, and timed (time to first thought next to time to first token)."""

from __future__ import annotations

import json

import pytest

import reasoning_fixtures as fx
from response_streaming.chat import history
from response_streaming.events import Message, Params, ReasoningBlock, ReasoningDelta
from response_streaming.export import export_json, export_markdown
from response_streaming.generation import Generations
from response_streaming.generation.answer import reasoning_delta
from response_streaming.providers.replay import ReplayProvider
from response_streaming.reasoning import blocks_of
from response_streaming.store import Store
from response_streaming.wire.bedrock import converse, family_of

THINKING = (
    ReasoningDelta("The user asks"),
    ReasoningDelta(" 2+2."),
    ReasoningDelta(signature=fx.SIGNATURE),
    ReasoningDelta(redacted=fx.REDACTED),
    ReasoningDelta("Unsigned afterthought."),
)
BLOCKS = (
    ReasoningBlock("The user asks 2+2.", fx.SIGNATURE),
    ReasoningBlock(redacted=fx.REDACTED),
    ReasoningBlock("Unsigned afterthought."),
)
ANSWER = "It is 4, as anyone can check."


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gens(request, tmp_path):
    url = request.getfixturevalue("postgres")() if request.param == "postgres" else f"sqlite:///{tmp_path / 'h.db'}"
    g = Generations(Store(url))
    yield g
    g.close()


@pytest.mark.parametrize("rate", [0, 200])  # all in one batch, or spread over several
def test_thinking_is_logged_stored_and_reloaded_byte_exact(gens, rate):
    cid = gens.store.create_conversation("t")
    provider = ReplayProvider(text=ANSWER, thinking=THINKING, rate=rate)
    gid = gens.start(provider, [Message("user", "2+2?")], Params(max_tokens=100), conversation_id=cid)
    chunks = list(gens.follow(gid))
    kinds = [c.kind for c in chunks]
    assert kinds.index("text") > max(i for i, k in enumerate(kinds) if k == "reasoning")  # thinking first
    assert blocks_of(reasoning_delta(c) for c in chunks if c.kind == "reasoning") == BLOCKS
    assert "".join(c.text for c in chunks if c.kind == "text") == ANSWER
    first = next(c for c in chunks if c.kind == "reasoning")
    assert first.data["ttfr_ms"] is not None
    metrics = chunks[-1].data["metrics"]
    assert metrics["ttfr_ms"] <= metrics["ttft_ms"]

    [answer] = gens.store.messages(cid)
    assert answer.content == ANSWER  # the answer alone
    assert answer.meta["reasoning"][0] == {"text": "The user asks 2+2.", "signature": fx.SIGNATURE}
    # The next request sees the thinking again, exactly: Claude gets the signed and redacted blocks back.
    gens.store.add_message(cid, "user", "And 3+3?")
    turns = history(gens.store, cid)
    assert turns[0] == Message("assistant", ANSWER, BLOCKS)
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    sent = converse.request(model, [Message("user", "2+2?"), *turns], Params(), family_of(model))
    assert sent["messages"][1]["content"][:2] == [
        {"reasoningContent": {"reasoningText": {"text": "The user asks 2+2.", "signature": fx.SIGNATURE}}},
        {"reasoningContent": {"redactedContent": fx.REDACTED}},
    ]


def test_exports_carry_the_thinking_marked(gens):
    cid = gens.store.create_conversation("Sums")
    gid = gens.start(
        ReplayProvider(text=ANSWER, thinking=THINKING), [Message("user", "2+2?")], Params(), conversation_id=cid
    )
    gens.wait(gid, 30)
    conversation, messages = gens.store.get_conversation(cid), gens.store.messages(cid)
    md = export_markdown(conversation, messages)
    assert "> **Thinking**\n>\n> The user asks 2+2.Unsigned afterthought." in md
    assert "_(redacted thinking)_" in md and md.index("**Thinking**") < md.index(ANSWER)
    data = json.loads(export_json(conversation, messages))
    assert data["messages"][0]["content"] == ANSWER
    assert data["messages"][0]["reasoning"][1]["redacted"]  # base64, decodable back to the same bytes


def test_a_stop_while_thinking_keeps_the_thinking_that_was_shown(gens):
    cid = gens.store.create_conversation("t")
    thinking = tuple(ReasoningDelta(f" step{i}") for i in range(200))
    provider = ReplayProvider(text=ANSWER, thinking=thinking, rate=40)
    gid = gens.start(provider, [Message("user", "2+2?")], Params(max_tokens=100), conversation_id=cid)
    seen = []
    for chunk in gens.follow(gid):
        seen.append(chunk)
        if sum(1 for c in seen if c.kind == "reasoning") == 2:
            gens.stop(gid)
    assert seen[-1].data["status"] == "stopped" and not any(c.kind == "text" for c in seen)
    [answer] = gens.store.messages(cid)
    shown = "".join(c.text for c in seen if c.kind == "reasoning")
    assert answer.status == "stopped" and answer.content == ""
    assert shown and "".join(b["text"] for b in answer.meta["reasoning"]) == shown  # nothing seen is lost

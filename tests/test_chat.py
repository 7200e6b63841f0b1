"""Turns of a conversation (save the prompt, start a generation), regenerate / edit / continue, one answer
at a time, export.

The scripted provider drives our layer (faults, cut-offs); the real embedded model checks that a
stopped answer frees it.
"""

from __future__ import annotations

import json
import time

import pytest

from response_streaming.chat import (
    CONTINUE_PROMPT,
    ConversationBusy,
    ConversationChanged,
    continue_turn,
    edit_turn,
    join_continuation,
    merge_metrics,
    regenerate_turn,
    start_turn,
)
from response_streaming.errors import BadRequest
from response_streaming.events import Params
from response_streaming.export import export_json, export_markdown
from response_streaming.generation import Generations
from response_streaming.providers.replay import ReplayProvider
from response_streaming.store import Store


@pytest.fixture()
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")


@pytest.fixture()
def gens(store):
    g = Generations(store)
    yield g
    g.close()


class Spy(ReplayProvider):
    """A replay provider that records what the database held, and what it was sent, when asked."""

    def __init__(self, store, cid, **kw):
        super().__init__(**kw)
        self.store, self.cid, self.seen, self.sent = store, cid, None, None

    def stream(self, messages, params):
        self.seen = [(m.role, m.content, m.status) for m in self.store.messages(self.cid)]
        self.sent = [(m.role, m.content) for m in messages]
        yield from super().stream(messages, params)


class SlowStart(ReplayProvider):
    """A model that takes its time before the first token (a cold start, a queue)."""

    def stream(self, messages, params):
        time.sleep(0.5)
        yield from super().stream(messages, params)


def run(gens, gid: str) -> str:
    """Wait for the generation to end; returns its status."""
    info = gens.wait(gid, 60)
    assert info is not None and not info.running
    return info.status


def log_text(gens, gid: str) -> str:
    return "".join(c.text for c in gens.read(gid) if c.kind == "text")


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_prompt_is_stored_before_the_model_is_called_and_the_answer_after(gens, store):
    cid = store.create_conversation("t")
    spy = Spy(store, cid, text="Hello there, friend.")
    gid = start_turn(gens, cid, spy, Params(max_tokens=50, temperature=0.3), "Say hello")
    assert run(gens, gid) == "complete"
    # When the model was called: the prompt was stored, and its answer existed, empty, as `streaming`.
    assert spy.seen == [("user", "Say hello", "complete"), ("assistant", "", "streaming")]
    [_user, answer] = store.messages(cid)
    assert (answer.role, answer.content, answer.status) == ("assistant", "Hello there, friend.", "complete")
    assert answer.meta["generation_id"] == gid
    assert answer.meta["provider"] == "replay" and answer.meta["model"] == "replay"
    assert answer.meta["params"]["temperature"] == 0.3 and answer.meta["params"]["max_tokens"] == 50
    m = answer.meta["metrics"]
    assert m["output_tokens"] == 3 and m["input_tokens"] == 2 and m["ttft_ms"] is not None
    assert m["stop_reason"] == "end_turn"
    assert not store.busy(cid)


def test_an_empty_prompt_is_refused_and_nothing_is_stored(gens, store):
    cid = store.create_conversation("t")
    with pytest.raises(BadRequest):
        start_turn(gens, cid, ReplayProvider(), Params(), "  \n")
    assert store.messages(cid) == [] and not store.busy(cid)


@pytest.mark.parametrize(
    "provider, status, text, error",
    [
        (ReplayProvider(text="a b c d e", fail_after=3), "error", "a b c", "broke off"),
        (ReplayProvider(text="a b c", finish=False), "incomplete", "a b c", "ended before"),
    ],
)
def test_a_failed_answer_keeps_its_partial_text_and_says_what_happened(gens, store, provider, status, text, error):
    cid = store.create_conversation("t")
    assert run(gens, start_turn(gens, cid, provider, Params(), "go")) == status
    answer = store.messages(cid)[-1]
    assert (answer.status, answer.content) == (status, text) and error in answer.error


def test_stop_saves_what_the_log_holds_and_frees_the_conversation(gens, store):
    cid = store.create_conversation("t")
    words = " ".join(f"w{i}" for i in range(200))
    gid = start_turn(gens, cid, ReplayProvider(text=words, rate=100), Params(max_tokens=300), "go")
    wait_for(lambda: len(log_text(gens, gid).split()) >= 5)
    assert store.busy(cid)
    assert gens.stop(gid)
    answer = store.messages(cid)[-1]
    assert answer.status == "stopped" and not store.busy(cid)
    assert answer.content == log_text(gens, gid) and words.startswith(answer.content)
    assert 5 <= len(answer.content.split()) < 200
    assert gens.read(gid)[-1].data["status"] == "stopped"


def test_an_answer_stopped_before_its_first_token_is_stopped_empty_and_frees_the_conversation(gens, store):
    cid = store.create_conversation("t")
    gid = start_turn(gens, cid, SlowStart(), Params(), "go")
    gens.stop(gid)
    answer = store.messages(cid)[-1]
    assert (answer.role, answer.status, answer.content) == ("assistant", "stopped", "")
    assert not store.busy(cid)


def test_one_stream_at_a_time_per_conversation(gens, store):
    cid = store.create_conversation("t")
    first = start_turn(gens, cid, ReplayProvider(text="a b c", rate=20), Params(), "one")
    with pytest.raises(ConversationBusy, match="another tab"):
        start_turn(gens, cid, ReplayProvider(), Params(), "two")
    other = store.create_conversation("u")  # other conversations are not affected
    run(gens, start_turn(gens, other, ReplayProvider(text="x"), Params(), "three"))
    run(gens, first)
    run(gens, start_turn(gens, cid, ReplayProvider(text="d"), Params(), "two"))
    assert [m.content for m in store.messages(cid)] == ["one", "a b c", "two", "d"]


def test_regenerate_replaces_the_last_answer(gens, store):
    cid = store.create_conversation("t")
    run(gens, start_turn(gens, cid, ReplayProvider(text="first answer", fail_after=1), Params(), "q"))
    failed = store.messages(cid)[-1]
    assert failed.status == "error"
    spy = Spy(store, cid, text="second answer")
    run(gens, regenerate_turn(gens, cid, spy, Params(), failed.id))
    assert spy.sent == [("user", "q")]  # the failed answer is not sent back to the model
    msgs = store.messages(cid)
    assert [(m.role, m.content, m.status) for m in msgs] == [
        ("user", "q", "complete"),
        ("assistant", "second answer", "complete"),
    ]
    with pytest.raises(ConversationChanged):  # a stale button (the page was drawn before another change)
        regenerate_turn(gens, cid, ReplayProvider(), Params(), failed.id)
    assert not store.busy(cid)


def test_edit_replaces_the_last_prompt_and_its_answer(gens, store):
    cid = store.create_conversation("t")
    run(gens, start_turn(gens, cid, ReplayProvider(text="A1"), Params(), "q1"))
    run(gens, start_turn(gens, cid, ReplayProvider(text="A2"), Params(), "q2"))
    last_user = [m for m in store.messages(cid) if m.role == "user"][-1]
    spy = Spy(store, cid, text="A2 again")
    run(gens, edit_turn(gens, cid, spy, Params(), last_user.id, "q2, better"))
    assert spy.sent == [("user", "q1"), ("assistant", "A1"), ("user", "q2, better")]
    assert [m.content for m in store.messages(cid)] == ["q1", "A1", "q2, better", "A2 again"]
    first_user = store.messages(cid)[0]
    with pytest.raises(ConversationChanged):  # only the last prompt can be edited
        edit_turn(gens, cid, ReplayProvider(), Params(), first_user.id, "nope")
    assert not store.busy(cid)


def test_continue_appends_to_the_same_answer_and_adds_up_its_metrics(gens, store):
    cid = store.create_conversation("t")
    run(gens, start_turn(gens, cid, ReplayProvider(text="one two three four five six"), Params(max_tokens=3), "count"))
    cut = store.messages(cid)[-1]
    assert (cut.content, cut.meta["metrics"]["stop_reason"]) == ("one two three", "max_tokens")
    spy = Spy(store, cid, text=" four five six")
    gid = continue_turn(gens, cid, spy, Params(max_tokens=10), cut.id)
    run(gens, gid)
    # While it ran, the cut answer was the streaming one, its text unchanged until the end.
    assert spy.seen[-1] == ("assistant", "one two three", "streaming")
    assert spy.sent == [("user", "count"), ("assistant", "one two three"), ("user", CONTINUE_PROMPT)]
    [_, answer] = store.messages(cid)
    assert (answer.id, answer.content, answer.status) == (cut.id, "one two three four five six", "complete")
    assert answer.meta["generation_id"] == gid
    m = answer.meta["metrics"]
    assert m["output_tokens"] == 6 and m["stop_reason"] == "end_turn" and len(answer.meta["parts"]) == 2
    assert m["ttft_ms"] == cut.meta["metrics"]["ttft_ms"]
    assert CONTINUE_PROMPT not in [m.content for m in store.messages(cid)]  # the instruction is never stored


def test_continue_in_place_sends_the_cut_answer_last(gens, store):
    cid = store.create_conversation("t")
    run(gens, start_turn(gens, cid, ReplayProvider(text="one two three four"), Params(max_tokens=2), "count"))
    spy = Spy(store, cid, text=" three four")
    spy.continues_in_place = True  # as the embedded base model does
    run(gens, continue_turn(gens, cid, spy, Params(), store.messages(cid)[-1].id))
    assert spy.sent == [("user", "count"), ("assistant", "one two")]
    assert store.messages(cid)[-1].content == "one two three four"


def test_continue_needs_an_answer_with_text(gens, store):
    cid = store.create_conversation("t")
    gens.stop(start_turn(gens, cid, SlowStart(), Params(), "q"))  # stopped before any text
    empty = store.messages(cid)[-1]
    assert (empty.status, empty.content) == ("stopped", "")
    with pytest.raises(BadRequest, match="nothing to continue"):
        continue_turn(gens, cid, ReplayProvider(), Params(), empty.id)
    assert not store.busy(cid)


def test_join_continuation_and_merge_metrics():
    assert join_continuation("It ended.", "Then") == "It ended. Then"
    assert join_continuation("adven", "ture") == "adventure"
    assert join_continuation("word", " next") == "word next"
    assert join_continuation("in the", "Hello") == "in the Hello"
    merged = merge_metrics(
        [
            {"ttft_ms": 100, "output_tokens": 3, "input_tokens": 5, "duration_ms": 10},
            {"ttft_ms": 40, "output_tokens": 4, "input_tokens": 9, "duration_ms": 20, "stop_reason": "end_turn"},
        ]
    )
    assert merged == {
        "ttft_ms": 100,
        "output_tokens": 7,
        "input_tokens": 14,
        "duration_ms": 30,
        "stop_reason": "end_turn",
    }
    assert (
        merge_metrics([{"output_tokens": 1, "input_tokens": None}, {"output_tokens": 2, "input_tokens": 3}])[
            "input_tokens"
        ]
        is None
    )


def test_exports_hold_every_message_with_status_and_metrics(gens, store):
    cid = store.create_conversation("Cats: a story")
    run(gens, start_turn(gens, cid, ReplayProvider(text="Once upon a time."), Params(max_tokens=20), "Tell me"))
    run(gens, start_turn(gens, cid, ReplayProvider(text="And then more", fail_after=2), Params(), "More"))
    conv, msgs = store.get_conversation(cid), store.messages(cid)
    md = export_markdown(conv, msgs)
    assert md.startswith("# Cats: a story\n")
    assert md.index("## You") < md.index("Tell me") < md.index("## Assistant (replay · replay)") < md.index("Once upon")
    assert "> Error: The model stream broke off" in md
    data = json.loads(export_json(conv, msgs))
    assert data["id"] == cid and data["title"] == "Cats: a story"
    assert [(m["role"], m["status"]) for m in data["messages"]] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "error"),
    ]
    answer = data["messages"][1]
    assert answer["content"] == "Once upon a time." and answer["provider"] == "replay"
    assert answer["params"]["max_tokens"] == 20 and answer["metrics"]["output_tokens"] == 4
    assert data["messages"][3]["content"] == "And then" and data["messages"][3]["error"]


def test_a_stopped_answer_frees_the_local_model(gens, store, local_provider):
    """Stop ends the generation: its job closes the llama.cpp stream and releases the model's lock."""
    engine = local_provider.engine
    cid = store.create_conversation("t")
    gid = start_turn(
        gens,
        cid,
        local_provider,
        Params(max_tokens=200, temperature=0.0),
        "Write a long story about two cats that go on an adventure:",
    )
    wait_for(lambda: len([c for c in gens.read(gid) if c.kind == "text"]) >= 3, 60)
    assert engine.busy()
    gens.stop(gid)
    wait_for(lambda: not engine.busy() and not store.busy(cid))  # after the token it is computing
    answer = store.messages(cid)[-1]
    assert answer.status == "stopped" and answer.content == log_text(gens, gid) and answer.content
    # The model answers the next request at once.
    assert (
        run(gens, start_turn(gens, cid, local_provider, Params(max_tokens=4, temperature=0.0), "Say hello:"))
        == "complete"
    )

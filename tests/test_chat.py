"""Turns of a conversation (save, stream, save), regenerate / edit / continue, the lease, export.

The scripted provider drives our layer (faults, cut-offs); the real embedded model checks that a
stopped answer frees it.
"""
from __future__ import annotations

import json
import time

import pytest

from response_streaming import chat
from response_streaming.chat import (CONTINUE_PROMPT, ConversationBusy, ConversationChanged, continue_turn, edit_turn,
                                     export_json, export_markdown, join_continuation, merge_metrics, regenerate_turn,
                                     start_turn)
from response_streaming.errors import BadRequest
from response_streaming.events import Params
from response_streaming.providers.replay import ReplayProvider
from response_streaming.store import Store


@pytest.fixture()
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")


class Spy(ReplayProvider):
    """A replay provider that records what the database held, and what it was sent, when asked."""

    def __init__(self, store, cid, **kw):
        super().__init__(**kw)
        self.store, self.cid, self.seen, self.sent = store, cid, None, None

    def stream(self, messages, params):
        self.seen = [(m.role, m.content) for m in self.store.messages(self.cid)]
        self.sent = [(m.role, m.content) for m in messages]
        yield from super().stream(messages, params)


def run(turn) -> chat.Turn:
    try:
        for _ in turn:
            pass
    finally:
        turn.close()
    return turn


def test_the_prompt_is_stored_before_the_model_is_called_and_the_answer_after(store):
    cid = store.create_conversation("t")
    spy = Spy(store, cid, text="Hello there, friend.")
    run(start_turn(store, cid, spy, Params(max_tokens=50, temperature=0.3), "Say hello"))
    assert spy.seen == [("user", "Say hello")]
    [user, answer] = store.messages(cid)
    assert (answer.role, answer.content, answer.status) == ("assistant", "Hello there, friend.", "complete")
    assert answer.meta["provider"] == "replay" and answer.meta["model"] == "replay"
    assert answer.meta["params"]["temperature"] == 0.3 and answer.meta["params"]["max_tokens"] == 50
    m = answer.meta["metrics"]
    assert m["output_tokens"] == 3 and m["input_tokens"] == 2 and m["ttft_ms"] is not None
    assert m["stop_reason"] == "end_turn"
    assert not store.busy(cid)


def test_an_empty_prompt_is_refused_and_nothing_is_stored(store):
    cid = store.create_conversation("t")
    with pytest.raises(BadRequest):
        start_turn(store, cid, ReplayProvider(), Params(), "  \n")
    assert store.messages(cid) == [] and not store.busy(cid)


@pytest.mark.parametrize("provider, status, text, error", [
    (ReplayProvider(text="a b c d e", fail_after=3), "error", "a b c", "broke off"),
    (ReplayProvider(text="a b c", finish=False), "incomplete", "a b c", "ended before"),
])
def test_a_failed_answer_keeps_its_partial_text_and_says_what_happened(store, provider, status, text, error):
    cid = store.create_conversation("t")
    run(start_turn(store, cid, provider, Params(), "go"))
    answer = store.messages(cid)[-1]
    assert (answer.status, answer.content) == (status, text) and error in answer.error


def test_a_closed_turn_is_saved_as_stopped_with_what_arrived(store):
    cid = store.create_conversation("t")
    turn = start_turn(store, cid, ReplayProvider(text="one two three four five"), Params(), "go")
    assert [next(turn), next(turn)] == ["one", " two"]
    turn.close()
    answer = store.messages(cid)[-1]
    assert (answer.status, answer.content) == ("stopped", "one two")
    assert not store.busy(cid)


def test_stop_keeps_exactly_the_pieces_that_were_shown(store):
    cid = store.create_conversation("t")
    turn = start_turn(store, cid, ReplayProvider(text="one two three four five"), Params(), "go")
    for _ in range(3):
        next(turn)  # three pieces arrived, the page drew two of them
    turn.stop(shown=2)
    turn.close()  # the stream's own thread closes it later: the saved answer does not change
    [_, answer] = store.messages(cid)
    assert (answer.status, answer.content, answer.meta["metrics"]["output_tokens"]) == ("stopped", "one two", 2)


def test_a_turn_that_never_started_is_stopped_empty_and_frees_the_conversation(store):
    cid = store.create_conversation("t")
    start_turn(store, cid, ReplayProvider(), Params(), "go").close()
    answer = store.messages(cid)[-1]
    assert (answer.role, answer.status, answer.content) == ("assistant", "stopped", "")
    assert not store.busy(cid)


def test_one_stream_at_a_time_per_conversation(store):
    cid = store.create_conversation("t")
    first = start_turn(store, cid, ReplayProvider(text="a b c"), Params(), "one")
    next(first)
    with pytest.raises(ConversationBusy, match="another tab"):
        start_turn(store, cid, ReplayProvider(), Params(), "two")
    other = store.create_conversation("u")  # other conversations are not affected
    run(start_turn(store, other, ReplayProvider(text="x"), Params(), "three"))
    run(first)
    run(start_turn(store, cid, ReplayProvider(text="d"), Params(), "two"))
    assert [m.content for m in store.messages(cid)] == ["one", "a b c", "two", "d"]


def test_regenerate_replaces_the_last_answer(store):
    cid = store.create_conversation("t")
    run(start_turn(store, cid, ReplayProvider(text="first answer", fail_after=1), Params(), "q"))
    failed = store.messages(cid)[-1]
    assert failed.status == "error"
    spy = Spy(store, cid, text="second answer")
    run(regenerate_turn(store, cid, spy, Params(), failed.id))
    assert spy.sent == [("user", "q")]  # the failed answer is not sent back to the model
    msgs = store.messages(cid)
    assert [(m.role, m.content, m.status) for m in msgs] == [("user", "q", "complete"),
                                                            ("assistant", "second answer", "complete")]
    with pytest.raises(ConversationChanged):  # a stale button (the page was drawn before another change)
        regenerate_turn(store, cid, ReplayProvider(), Params(), failed.id)
    assert not store.busy(cid)


def test_edit_replaces_the_last_prompt_and_its_answer(store):
    cid = store.create_conversation("t")
    run(start_turn(store, cid, ReplayProvider(text="A1"), Params(), "q1"))
    run(start_turn(store, cid, ReplayProvider(text="A2"), Params(), "q2"))
    last_user = [m for m in store.messages(cid) if m.role == "user"][-1]
    spy = Spy(store, cid, text="A2 again")
    run(edit_turn(store, cid, spy, Params(), last_user.id, "q2, better"))
    assert spy.sent == [("user", "q1"), ("assistant", "A1"), ("user", "q2, better")]
    assert [m.content for m in store.messages(cid)] == ["q1", "A1", "q2, better", "A2 again"]
    first_user = store.messages(cid)[0]
    with pytest.raises(ConversationChanged):  # only the last prompt can be edited
        edit_turn(store, cid, ReplayProvider(), Params(), first_user.id, "nope")


def test_continue_appends_to_the_same_answer_and_adds_up_its_metrics(store):
    cid = store.create_conversation("t")
    run(start_turn(store, cid, ReplayProvider(text="one two three four five six"), Params(max_tokens=3), "count"))
    cut = store.messages(cid)[-1]
    assert (cut.content, cut.meta["metrics"]["stop_reason"]) == ("one two three", "max_tokens")
    spy = Spy(store, cid, text=" four five six")
    turn = continue_turn(store, cid, spy, Params(max_tokens=10), cut.id)
    assert turn.prior == "one two three"
    run(turn)
    assert spy.sent == [("user", "count"), ("assistant", "one two three"), ("user", CONTINUE_PROMPT)]
    [_, answer] = store.messages(cid)
    assert (answer.id, answer.content, answer.status) == (cut.id, "one two three four five six", "complete")
    m = answer.meta["metrics"]
    assert m["output_tokens"] == 6 and m["stop_reason"] == "end_turn" and len(answer.meta["parts"]) == 2
    assert m["ttft_ms"] == cut.meta["metrics"]["ttft_ms"]
    assert CONTINUE_PROMPT not in [m.content for m in store.messages(cid)]  # the instruction is never stored


def test_continue_in_place_sends_the_cut_answer_last(store):
    cid = store.create_conversation("t")
    run(start_turn(store, cid, ReplayProvider(text="one two three four"), Params(max_tokens=2), "count"))
    spy = Spy(store, cid, text=" three four")
    spy.continues_in_place = True  # as the embedded base model does
    run(continue_turn(store, cid, spy, Params(), store.messages(cid)[-1].id))
    assert spy.sent == [("user", "count"), ("assistant", "one two")]
    assert store.messages(cid)[-1].content == "one two three four"


def test_continue_needs_an_answer_with_text(store):
    cid = store.create_conversation("t")
    start_turn(store, cid, ReplayProvider(), Params(), "q").close()  # stopped before any text
    empty = store.messages(cid)[-1]
    with pytest.raises(BadRequest, match="nothing to continue"):
        continue_turn(store, cid, ReplayProvider(), Params(), empty.id)
    assert not store.busy(cid)


def test_join_continuation_and_merge_metrics():
    assert join_continuation("It ended.", "Then") == "It ended. Then"
    assert join_continuation("adven", "ture") == "adventure"
    assert join_continuation("word", " next") == "word next"
    assert join_continuation("in the", "Hello") == "in the Hello"
    merged = merge_metrics([{"ttft_ms": 100, "output_tokens": 3, "input_tokens": 5, "duration_ms": 10},
                            {"ttft_ms": 40, "output_tokens": 4, "input_tokens": 9, "duration_ms": 20,
                             "stop_reason": "end_turn"}])
    assert merged == {"ttft_ms": 100, "output_tokens": 7, "input_tokens": 14, "duration_ms": 30,
                      "stop_reason": "end_turn"}
    assert merge_metrics([{"output_tokens": 1, "input_tokens": None}, {"output_tokens": 2, "input_tokens": 3}])[
        "input_tokens"] is None


def test_exports_hold_every_message_with_status_and_metrics(store):
    cid = store.create_conversation("Cats: a story")
    run(start_turn(store, cid, ReplayProvider(text="Once upon a time."), Params(max_tokens=20), "Tell me"))
    run(start_turn(store, cid, ReplayProvider(text="And then more", fail_after=2), Params(), "More"))
    conv, msgs = store.get_conversation(cid), store.messages(cid)
    md = export_markdown(conv, msgs)
    assert md.startswith("# Cats: a story\n")
    assert md.index("## You") < md.index("Tell me") < md.index("## Assistant (replay · replay)") < md.index("Once upon")
    assert "> Error: The model stream broke off" in md
    data = json.loads(export_json(conv, msgs))
    assert data["id"] == cid and data["title"] == "Cats: a story"
    assert [(m["role"], m["status"]) for m in data["messages"]] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "error")]
    answer = data["messages"][1]
    assert answer["content"] == "Once upon a time." and answer["provider"] == "replay"
    assert answer["params"]["max_tokens"] == 20 and answer["metrics"]["output_tokens"] == 4
    assert data["messages"][3]["content"] == "And then" and data["messages"][3]["error"]


def test_a_stopped_answer_frees_the_local_model(store, local_provider):
    """Closing the turn (what Stop does) closes the llama.cpp stream and releases the model's lock."""
    from response_streaming.ui.live import background

    engine = local_provider.engine
    cid = store.create_conversation("t")
    turn = start_turn(store, cid, local_provider, Params(max_tokens=200, temperature=0.0),
                      "Write a long story about two cats that go on an adventure:")
    stream = background(turn)
    got = [p for p, _ in zip((p for p in stream if p is not None), range(3))]
    assert len(got) == 3 and engine.busy()
    turn.stop(shown=3)
    stream.close()
    deadline = time.monotonic() + 30  # the worker closes the stream after the token it is computing
    while (engine.busy() or store.busy(cid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not engine.busy() and not store.busy(cid)
    answer = store.messages(cid)[-1]
    assert answer.status == "stopped" and answer.content == "".join(got)
    # The model answers the next request at once.
    run(start_turn(store, cid, local_provider, Params(max_tokens=4, temperature=0.0), "Say hello:"))
    assert store.messages(cid)[-1].status == "complete"

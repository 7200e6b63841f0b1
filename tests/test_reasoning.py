"""The inline tag splitter: every split of the stream gives the same reasoning and answer."""

from __future__ import annotations

import pytest

from response_streaming.events import Finish, ReasoningDelta, TextDelta, Usage
from response_streaming.reasoning import TagSplitter, split_inline_reasoning


def run(pieces, starts_inside=False):
    splitter = TagSplitter(starts_inside)
    events = [e for p in pieces for e in splitter.feed(p)] + splitter.flush()
    thought = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert all(e.text for e in events), "no empty pieces"
    return thought, answer


def splits(text):
    """Every way of cutting `text` in two, plus one piece per character."""
    yield [text]
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]
    yield list(text)


CASES = [
    # (stream, starts_inside, reasoning, answer)
    ("<think>Add 2 and 2.</think>\n\nIt is 4.", False, "Add 2 and 2.", "It is 4."),
    ("\n<thinking>hmm</thinking>Yes.", False, "hmm", "Yes."),
    ("<reasoning>step 1; step 2</reasoning> Done.", False, "step 1; step 2", "Done."),
    ("Plain answer, no thought.", False, "", "Plain answer, no thought."),
    ("  Indented answer.", False, "", "  Indented answer."),
    ("The tag <think> is just text here.", False, "", "The tag <think> is just text here."),
    ("<b>bold</b> is not a thought", False, "", "<b>bold</b> is not a thought"),
    ("I think so.</think>Paris.", True, "I think so.", "Paris."),
    ("<think>R1 opened it.</think>Paris.", True, "R1 opened it.", "Paris."),
    ("<think>cut by max_tokens, never clos", False, "cut by max_tokens, never clos", ""),
    ("thinking forever", True, "thinking forever", ""),
    ("<thi", False, "", "<thi"),
    ("ünïcödé <think> stays", False, "", "ünïcödé <think> stays"),
    ("<think>a < b and </thin are fine</think>ok", False, "a < b and </thin are fine", "ok"),
]


@pytest.mark.parametrize("stream,inside,thought,answer", CASES)
def test_every_split_gives_the_same_result(stream, inside, thought, answer):
    for pieces in splits(stream):
        assert run(pieces, inside) == (thought, answer), pieces


def test_order_is_kept_and_text_is_not_held_longer_than_a_tag():
    splitter = TagSplitter()
    assert splitter.feed("<think>one ") == [ReasoningDelta("one ")]
    assert splitter.feed("two</th") == [ReasoningDelta("two")]
    assert splitter.feed("ink>Answer") == [TextDelta("Answer")]
    assert splitter.feed(" more <think>") == [TextDelta(" more <think>")]
    assert splitter.flush() == []


def test_events_pass_through_and_the_upstream_is_closed():
    closed = []

    def upstream():
        try:
            yield TextDelta("<think>x")
            yield TextDelta("</think>y")
            yield Usage(3, 4)
            yield Finish("end_turn")
        finally:
            closed.append(True)

    out = list(split_inline_reasoning(upstream()))
    assert out == [ReasoningDelta("x"), TextDelta("y"), Usage(3, 4), Finish("end_turn")]
    assert closed == [True]


def test_held_back_text_comes_out_before_finish():
    events = [TextDelta("<think>cut"), Finish("max_tokens")]
    assert list(split_inline_reasoning(iter(events))) == [ReasoningDelta("cut"), Finish("max_tokens")]


def test_abandoning_the_stream_closes_the_upstream():
    closed = []

    def upstream():
        try:
            while True:
                yield TextDelta("word ")
        finally:
            closed.append(True)

    stream = split_inline_reasoning(upstream())
    assert next(stream) == TextDelta("word ")
    stream.close()
    assert closed == [True]

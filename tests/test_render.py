"""The renderer's pure parts and its cost, with a recording stand-in for Streamlit containers."""

from __future__ import annotations

import itertools

from response_streaming.providers.replay import split_tokens
from response_streaming.render import LiveMarkdown, split_blocks


class Element:
    def __init__(self, log):
        self.log, self.body = log, ""

    def markdown(self, text):
        self.body = text
        self.log.append(len(text))


class Container:
    def __init__(self, log=None):
        self.log = [] if log is None else log
        self.elements, self.captions = [], []

    def empty(self):
        self.elements.append(Element(self.log))
        return self.elements[-1]

    def container(self):
        self.elements.append(Container(self.log))
        return self.elements[-1]

    def caption(self, text):
        self.captions.append(text)

    @property
    def body(self):
        return self.shown

    @property
    def shown(self):
        return "\n\n".join(e.body for e in self.elements if e.body)


def test_split_blocks_keeps_code_fences_whole():
    blocks, tail = split_blocks("intro\n\n```py\na = 1\n\nb = 2\n```\n\nafter\n\nstill typ")
    assert blocks == ["intro", "```py\na = 1\n\nb = 2\n```", "after"] and tail == "still typ"


def test_split_blocks_open_fence_stays_in_the_tail():
    blocks, tail = split_blocks("intro\n\n```\ncode\n\nmore code")
    assert blocks == ["intro"] and tail == "```\ncode\n\nmore code"


def test_a_backtick_in_an_info_string_opens_no_fence():
    """CommonMark: a backtick fence's info string can't hold a backtick, so this line is text, and the
    blank line after it ends a block (the old count of fence-like lines waited for a closing one)."""
    blocks, tail = split_blocks("```x`y\n\nnext\n\n```py\nopen")
    assert blocks == ["```x`y", "next"] and tail == "```py\nopen"


def test_only_a_matching_run_closes_a_fence():
    blocks, tail = split_blocks("````\n```\n\n~~~\n\n````\n\nafter\n\ntail")
    assert blocks == ["````\n```\n\n~~~\n\n````", "after"] and tail == "tail"


def test_first_piece_is_drawn_at_once_then_coalesced():
    c = Container()
    view = LiveMarkdown(c, interval=10.0)
    assert view.update("Hello") is True
    assert view.update(" world") is False  # within the interval: not drawn yet
    view.finish()
    assert c.shown == "Hello world"


def test_final_text_is_exactly_the_answer():
    text = "# Title\n\nFirst para with *stars*.\n\n```\ncode\n\nblock\n```\n\n- a\n- b\n\nLast words"
    c = Container()
    view = LiveMarkdown(c, interval=0.0)
    for piece in split_tokens(text):
        view.update(piece)
    view.finish()
    assert c.shown == text


def test_cost_is_linear_in_answer_length():
    """Bytes sent to the page per answer byte stay flat as answers grow (the quadratic way grows 16x here)."""

    def sent(paragraphs):
        text = "\n\n".join("word " * 60 for _ in range(paragraphs))
        c = Container()
        view = LiveMarkdown(c, interval=0.0)  # worst case: a redraw on every piece
        for piece in split_tokens(text):
            view.update(piece)
        view.finish()
        return sum(c.log) / len(text)

    small, large = sent(4), sent(64)
    assert large < small * 1.5


def test_finished_blocks_are_grouped_so_no_container_grows_with_the_answer():
    text = "\n\n".join(f"Paragraph {i} words." for i in range(95)) + "\n\nthe tail"
    c = Container()
    view = LiveMarkdown(c, interval=0.0)
    for piece in split_tokens(text):
        view.update(piece)
    view.finish()
    assert c.shown == text
    assert len(c.elements) == 5 and all(len(g.elements) <= LiveMarkdown.GROUP + 1 for g in c.elements)


def test_a_slow_stream_is_redrawn_every_one_to_two_intervals(monkeypatch):
    """Pieces at 100 tokens/s: a redraw waits for text worth re-sending the tail, never past two intervals
    (plus the wait for the next piece)."""
    import response_streaming.render as render

    clock = [0.0]
    monkeypatch.setattr(render.time, "monotonic", lambda: clock[0])
    c = Container()
    view = LiveMarkdown(c, interval=0.05)
    drawn_at = []
    for i, piece in enumerate(split_tokens("word " * 400)):
        clock[0] = i * 0.01
        if view.update(piece):
            drawn_at.append(clock[0])
    gaps = [b - a for a, b in itertools.pairwise(drawn_at)]
    assert drawn_at[0] == 0.0 and all(0.05 - 1e-9 <= g <= 0.1 + 0.01 + 1e-9 for g in gaps) and max(gaps) > 0.06

"""Drawing a growing Markdown answer with cost linear in its length, and drawing it safely.

Why: `st.write_stream` and LangChain's `StreamlitCallbackHandler` re-send and re-parse the whole
answer on every token, so the cost grows with the square of its length. Here the first piece is
drawn at once, later ones at most once per `interval`, and finished blocks (paragraphs, closed
code fences) are written once into their own element and never sent again: only the unfinished
last block is redrawn.

The pure functions (`split_blocks`, and `sanitize` from `sanitize.py`, re-exported here as the one
way model text reaches the page) carry the logic; `LiveMarkdown` only talks to Streamlit containers
(duck-typed: `.container()`, `.empty()` whose result has `.markdown()`, and `.caption()`).
"""

from __future__ import annotations

import re
import time

from .sanitize import UNSAFE, escape, is_safe, safe_url, sanitize

__all__ = ["UNSAFE", "LiveMarkdown", "escape", "is_safe", "safe_url", "sanitize", "split_blocks"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$", re.M)
# A tail longer than this is frozen at its last line break even inside a paragraph, so one
# endless paragraph cannot make every redraw bigger (the split only adds a paragraph gap).
MAX_TAIL = 2000


def _open_fence(text: str) -> bool:
    """Whether `text` ends inside a fenced code block, by CommonMark's rules for top-level fences: a
    backtick fence's info string has no backtick (else the line is not a fence), and only a run of
    the same character, at least as long and with nothing after it, closes a fence."""
    fence = ""
    for m in FENCE.finditer(text):
        mark, rest = m.group(1), m.group(2)
        if not fence:
            if not (mark[0] == "`" and "`" in rest):
                fence = mark
        elif mark[0] == fence[0] and len(mark) >= len(fence) and not rest.strip():
            fence = ""
    return bool(fence)


def split_blocks(text: str) -> tuple[list[str], str]:
    """Split into finished blocks and the unfinished tail.

    A block is finished when a blank line follows it outside a code fence. Joining the blocks
    with "\n\n" and appending the tail renders like the whole text.
    """
    blocks: list[str] = []
    start = 0
    pos = text.find("\n\n")
    while pos != -1:
        chunk = text[start:pos]
        if chunk.strip() and not _open_fence(chunk):
            blocks.append(chunk)
            start = pos + 2
        pos = text.find("\n\n", pos + 2)
    tail = text[start:]
    if len(tail) > MAX_TAIL and not _open_fence(tail):
        cut = tail.rfind("\n")
        if cut > 0:
            blocks.append(tail[:cut])
            tail = tail[cut + 1 :]
    return blocks, tail


class LiveMarkdown:
    """Renders a streamed answer into a container: first piece at once, then at most one redraw per
    interval (two intervals when little text came since the last redraw).

    Finished blocks go into sub-containers of `GROUP` blocks each (the answer's own container holds
    only those groups), because Streamlit's frontend re-renders every sibling of the element it
    updates: with all blocks side by side, each redraw of the tail cost browser time in proportion
    to the answer so far (measured in bench/: ~10 ms per redraw next to no finished blocks, ~30 ms
    next to 300), which made a long answer quadratic again, in the browser.
    """

    CURSOR = " ▌"
    GROUP = 20
    # Each redraw re-sends the unfinished block plus about REDRAW_BYTES more (measured in bench/: a
    # Streamlit delta carries ~97 bytes beside its text, and the app redraws its ~175-byte metrics
    # line with every redraw). A redraw that would bring less new text than 1/AMPLIFICATION of
    # that waits, up to two intervals: a slow stream is drawn every 50-100 ms instead of every
    # 50 ms, and the bytes (and browser work) per answer byte stay bounded at any rate. 8 rather
    # than 10 leaves room for what the rule does not see (finished blocks, sent once, and their
    # deltas' overhead) under the 10x bound we aim for.
    REDRAW_BYTES = 270
    AMPLIFICATION = 8

    def __init__(self, container, interval: float = 0.05) -> None:
        self.container = container
        self.interval = interval
        self.pending = ""  # text not yet frozen: the unfinished last block and what came after it
        self.fresh = 0  # characters added since the last redraw
        self.group = container.container()
        self.grouped = 0  # finished blocks in `group`
        self.tail = self.group.empty()
        self.last = 0.0
        self.drawn = False

    def update(self, piece: str) -> bool:
        """Add a piece; returns True when it was drawn now (callers refresh their metrics then)."""
        self.pending += piece
        self.fresh += len(piece)
        now = time.monotonic()
        if self.drawn:
            waited = now - self.last
            if waited < self.interval:
                return False
            if waited < 2 * self.interval and self.fresh * self.AMPLIFICATION < len(self.pending) + self.REDRAW_BYTES:
                return False
        self._draw(self.CURSOR)
        self.last, self.drawn, self.fresh = now, True, 0
        return True

    def finish(self, note: str = "") -> None:
        """Draw the final text without the cursor (and with a note, for a stopped or failed answer)."""
        self._draw("")
        if note:
            self.container.caption(note)

    def _draw(self, cursor: str) -> None:
        blocks, self.pending = split_blocks(self.pending)
        for block in blocks:
            # The block takes the tail's place (no flicker) and is never sent again; the next tail
            # goes after it, in a new group when this one is full.
            self.tail.markdown(sanitize(block))
            self.grouped += 1
            if self.grouped == self.GROUP:
                self.group, self.grouped = self.container.container(), 0
            self.tail = self.group.empty()
        self.tail.markdown(sanitize(self.pending) + cursor)

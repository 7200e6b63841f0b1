"""Drawing a growing Markdown answer with cost linear in its length, and drawing it safely.

Why: `st.write_stream` and LangChain's `StreamlitCallbackHandler` re-send and re-parse the whole
answer on every token, so the cost grows with the square of its length. Here the first piece is
drawn at once, later ones at most once per `interval`, and finished blocks (paragraphs, closed
code fences) are written once into their own element and never sent again: only the unfinished
last block is redrawn.

The pure functions (`split_blocks`, `sanitize`) carry the logic; `LiveMarkdown` only talks to
Streamlit containers (duck-typed: anything with `.empty()` whose result has `.markdown()`).
"""
from __future__ import annotations

import re
import time

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)
# A tail longer than this is frozen at its last line break even inside a paragraph, so one
# endless paragraph cannot make every redraw bigger (the split only adds a paragraph gap).
MAX_TAIL = 2000


def _open_fence(text: str) -> bool:
    """Whether `text` ends inside a fenced code block."""
    return len(FENCE.findall(text)) % 2 == 1


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
            tail = tail[cut + 1:]
    return blocks, tail


_IMAGE = re.compile(r"!\[")
_UNSAFE_INLINE = re.compile(r"\]\(\s*<?\s*(?:javascript|vbscript|data|file)\s*:[^)]*\)", re.I)
_UNSAFE_REF = re.compile(r"^(\s{0,3}\[[^\]]+\]:\s*)<?\s*(?:javascript|vbscript|data|file)\s*:\S*", re.I | re.M)
_UNSAFE_AUTO = re.compile(r"<\s*((?:javascript|vbscript|data|file)\s*:)", re.I)
_HTML = re.compile(r"<(?=[A-Za-z/!?])")


def _sanitize_prose(text: str) -> str:
    text = _IMAGE.sub(r"!\\[", text)  # "![alt](url)" becomes "!" + a link: the image is never fetched
    text = _UNSAFE_INLINE.sub("](#unsafe-link-removed)", text)
    text = _UNSAFE_REF.sub(r"\1#unsafe-link-removed", text)
    text = _UNSAFE_AUTO.sub(r"&lt;\1", text)
    return _HTML.sub("&lt;", text)  # raw HTML is shown as text, never parsed


def sanitize(markdown: str) -> str:
    """Markdown that is safe to render: no raw HTML, no images fetched, no script/data links.

    Code blocks are left alone: their content is shown verbatim by the Markdown renderer anyway.
    """
    parts = re.split(r"(^ {0,3}(?:`{3,}|~{3,}).*?(?:^ {0,3}(?:`{3,}|~{3,})[^\n]*$|\Z))", markdown, flags=re.M | re.S)
    return "".join(p if i % 2 else _sanitize_prose(p) for i, p in enumerate(parts))


class LiveMarkdown:
    """Renders a streamed answer into a container: first piece at once, then at most one redraw per interval."""

    CURSOR = " ▌"

    def __init__(self, container, interval: float = 0.05) -> None:
        self.container = container
        self.interval = interval
        self.text = ""
        self.frozen = 0  # characters of `text` already written as finished blocks
        self.tail = container.empty()
        self.last = 0.0
        self.drawn = False

    def update(self, piece: str) -> bool:
        """Add a piece; returns True when it was drawn now (callers refresh their metrics then)."""
        self.text += piece
        now = time.monotonic()
        if self.drawn and now - self.last < self.interval:
            return False
        self._draw(self.CURSOR)
        self.last, self.drawn = now, True
        return True

    def finish(self, note: str = "") -> None:
        """Draw the final text without the cursor (and with a note, for a stopped or failed answer)."""
        self._draw("")
        if note:
            self.container.caption(note)

    def _draw(self, cursor: str) -> None:
        blocks, tail = split_blocks(self.text[self.frozen:])
        for block in blocks:
            self.tail.markdown(sanitize(block))
            self.tail = self.container.empty()
        self.frozen = len(self.text) - len(tail)
        self.tail.markdown(sanitize(tail) + cursor)

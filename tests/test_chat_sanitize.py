"""`render.sanitize`: model output made safe to render (the browser test checks the page itself)."""
from __future__ import annotations

import re

import pytest

from response_streaming.render import UNSAFE, safe_url, sanitize
from response_streaming.ui.format import plain


def links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]*)", md)


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "javascript&#58;alert(1)", "&#106;avascript:alert(1)", "javascript\\:alert(1)", "<javascript:alert(1)>",
    "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd", "java\u200bscript:x",
])
def test_script_data_and_file_links_are_unsafe(url):
    assert not safe_url(url)


@pytest.mark.parametrize("url", ["https://example.com/a_(b)", "http://x.org", "mailto:a@b.c", "#section", "/relative",
                                 "page.html?a=1:2"])
def test_web_mail_and_relative_links_are_kept(url):
    assert safe_url(url)


def test_unsafe_inline_and_reference_links_are_made_inert():
    md = sanitize("[a](javascript:alert(1)) [b](JaVa&#115;cript:x) [c [nested]](data:text/html,x) "
                  "[d](<javascript:y>)\n\n[r]: javascript:alert(3)\n[s]:\n  vbscript:z")
    assert "javascript" not in md.lower().replace("unsafe-link-removed", "") and "data:" not in md
    assert links(md) == [UNSAFE] * 4
    assert "[r]: " + UNSAFE in md and "[s]:\n  " + UNSAFE in md


def test_images_become_links_and_are_never_fetched():
    md = sanitize("![cat](https://evil.example/p.png?q=secret) ![](data:image/png;base64,AAAA) ![ref][r] wow![")
    assert "![" not in md.replace("!\\[", "")
    assert "[Image: cat](https://evil.example/p.png?q=secret)" in md  # the reader may open it on purpose
    assert "[Image: no description](" + UNSAFE + ")" in md and "[Image: ref][r]" in md


def test_raw_html_is_shown_as_text_outside_code_and_verbatim_inside():
    md = sanitize("<script>alert(1)</script> <img src=x onerror=alert(1)> <!-- c --> <https://x.org>\n\n"
                  "Use `<div>` or ``a ` <b>``.\n\n```html\n<b>![x](javascript:y)</b>\n```")
    assert "<script" not in md and "<img" not in md and "<!--" not in md and "<https" not in md
    assert "&lt;script>" in md and "&lt;img src=x" in md
    assert "`<div>`" in md and "``a ` <b>``" in md  # code spans are shown verbatim by Markdown
    assert "```html\n<b>![x](javascript:y)</b>\n```" in md


def test_a_code_span_cannot_hide_html_across_paragraphs():
    md = sanitize("`start\n\n<img src=x onerror=alert(1)>\n\n`")
    assert "<img" not in md


def test_dollars_are_text_not_maths():
    assert sanitize("It costs $5 or $10.") == "It costs \\$5 or \\$10."
    assert sanitize("`$x`") == "`$x`"


def test_safe_markdown_is_unchanged():
    text = "# Title\n\n**bold** _it_ [link](https://example.com) - item\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    assert sanitize(text) == text


def test_labels_carry_no_markdown():
    label = plain("![x](https://evil.example/i.png) **bold** :red[c] 1. item")
    assert "![" not in label and "](" not in label and "**" not in label and ":red[" not in label
    assert label.replace("\\", "") == "![x](https://evil.example/i.png) **bold** :red[c] 1. item"

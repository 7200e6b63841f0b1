"""The lab's page in a real headless Chromium, on the real embedded model."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from response_streaming.store import Store

pytestmark = pytest.mark.browser
LAB_PROMPT = "Write a story about two cats that go on an adventure:"


def visible_text(s: str) -> str:
    """Compare what a reader sees: Markdown punctuation and whitespace differences aside."""
    return re.sub(r"[\s*_`#>~\\|▌-]+", " ", s).strip()


def rendered_text(markdown: str) -> str:
    """The text a browser shows for `markdown`: list numbers are drawn by CSS, not part of innerText."""
    return visible_text(re.sub(r"(?m)^\s*\d+[.)]\s+", "", markdown))


def test_answer_streams_token_by_token_and_ends_as_the_model_produced(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="local", max_tokens=200, temperature=0, n_ctx=2048)  # ~3 s: room to see it grow
    page.goto(url)
    page.get_by_role("heading", name="Response Streaming").wait_for()
    assert page.title() == "Response Streaming"
    page.locator("textarea").fill(LAB_PROMPT)
    page.get_by_role("button", name="Go").click()

    answer = page.locator(".st-key-answer").last
    answer.wait_for(timeout=60_000)
    seen = []
    store = Store(f"sqlite:///{tmp_path / 'data' / 'history.sqlite3'}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = answer.inner_text()
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        convs = store.list_conversations()
        # Ended: the answer's row exists from the start (status `streaming`) and is written at the end.
        done = convs and any(m.role == "assistant" and m.status != "streaming" for m in store.messages(convs[0]["id"]))
        if done and "▌" not in text:
            break
        time.sleep(0.03)
    # The page has settled when the finished answer is drawn with its actions (between two of the
    # live view's updates the text can lack its last words for a moment, also after the row is written).
    expect(page.locator(".st-key-actions")).to_be_visible(timeout=30_000)
    final = page.locator(".st-key-answer").last.inner_text()
    seen.append(final)
    [conv] = store.list_conversations()
    produced = store.messages(conv["id"])[-1]
    assert produced.role == "assistant" and produced.status == "complete" and produced.content.strip()
    growing = [len(visible_text(s)) for s in seen]
    assert len(set(growing)) >= 3, f"the answer should be seen growing at least three times, saw {seen}"
    # Not strictly monotonic: half-typed Markdown (a link, a list marker) can render shorter a moment later.
    assert growing[-1] > growing[0] and max(growing) == growing[-1], seen
    assert visible_text(final) == rendered_text(produced.content)

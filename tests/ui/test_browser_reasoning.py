"""A model's thinking on the page, in real headless Chromium: a "Thinking…" expander streams open, then
collapses to "Thought for N s" when the answer starts; the answer excludes the thinking; a reload shows
it again from the history. The replay provider is the point here: its thinking is known exactly."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_browser_chat import answer_text, history, send, settled, visible_text, wait_for

pytestmark = pytest.mark.browser
THOUGHT = " ".join(f"step{i}" for i in range(24))  # 24 pieces at 8/s: three seconds of thinking
ANSWER = "The answer is four."


def expander(page):
    return page.locator('[data-testid="stExpander"]').filter(has_text=re.compile("Thinking|Thought"))


def test_thinking_streams_then_collapses_and_survives_a_reload(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="replay", replay_rate=8, replay_thinking=THOUGHT, replay_text=ANSWER)
    page.goto(url)
    send(page, "What is 2+2?")
    live = expander(page)
    expect(live.get_by_text("Thinking…")).to_be_visible(timeout=60_000)
    expect(live.locator("details")).to_have_attribute("open", "")  # open while it streams
    first = wait_for(lambda: re.findall(r"step\d+", live.inner_text()), 30, "streamed thinking")
    grown = wait_for(
        lambda: len(re.findall(r"step\d+", live.inner_text())) > len(first) and live.inner_text(), 30, "more thinking"
    )
    assert "step0" in grown and not re.search(r"step\d+", answer_text(page))  # thinking, not answer

    done = expander(page).filter(has_text=re.compile(r"Thought for \d+ s"))
    expect(done).to_be_visible(timeout=60_000)
    seconds = int(re.search(r"Thought for (\d+) s", done.inner_text()).group(1))
    assert 1 <= seconds <= 10
    expect(done.locator("details")).not_to_have_attribute("open", "")  # collapsed once the answer started
    wait_for(lambda: visible_text(answer_text(page)) == visible_text(ANSWER), 60, "the answer")

    [_, stored] = settled(history(tmp_path), 1, 60)
    assert stored.content == ANSWER  # the answer alone: Copy and Continue see no thinking
    assert "".join(b["text"] for b in stored.meta["reasoning"]) == THOUGHT

    page.reload()
    again = expander(page).filter(has_text=re.compile(r"Thought for \d+ s"))
    expect(again).to_be_visible(timeout=60_000)
    assert int(re.search(r"Thought for (\d+) s", again.inner_text()).group(1)) == seconds
    again.locator("summary").click()
    expect(again.get_by_text(re.compile(r"step0 step1 .* step23"))).to_be_visible()
    assert visible_text(answer_text(page)) == visible_text(ANSWER)
    expect(page.get_by_text(re.compile(r"first thought \d+ ms · first token \d+ ms"))).to_be_visible()

"""An answer's thinking on the page: a "Thinking…" expander, open while the model thinks, collapsed to
"Thought for N s" when the answer starts; stored answers show it collapsed.

The thinking goes through the same renderer (`LiveMarkdown`) and the same sanitiser as answers, and
is never part of the answer's text (so not of Copy or Continue either). N comes from the log's own
times (time to first thought, time to first token), so a page that re-attaches after a reload shows
the same duration as the one that watched.
"""

from __future__ import annotations

import time

import streamlit as st

from ..render import LiveMarkdown
from .cache import render_cache

REDACTED_NOTE = "Part of the thinking was encrypted by the provider and is not shown."


def thought_seconds(ttfr_ms: int | None, ttft_ms: int | None, duration_ms: int | None = None) -> int | None:
    """Whole seconds from the first thought to the first answer token (or to the end, with no answer)."""
    end = ttft_ms if ttft_ms is not None else duration_ms
    if ttfr_ms is None or end is None:
        return None
    return max(0, round((end - ttfr_ms) / 1000))


def label(seconds: int | None) -> str:
    return "Thought" if seconds is None else f"Thought for {seconds} s"


def _draw_closed(slot, text: str, seconds: int | None, redacted: bool) -> None:
    with slot.container(), st.expander(label(seconds), expanded=False, icon=":material/psychology:"):
        if text.strip():
            st.markdown(render_cache().sanitized(text))  # a finished thought: sanitised once (`cache`)
        if redacted:
            st.caption(REDACTED_NOTE)


def show_stored(slot, meta: dict) -> None:
    """A stored answer's thinking (`meta["reasoning"]`), collapsed; nothing when it has none."""
    blocks = meta.get("reasoning") or []
    if not blocks:
        return
    m = meta.get("metrics") or {}
    seconds = thought_seconds(m.get("ttfr_ms"), m.get("ttft_ms"), m.get("duration_ms"))
    text = "".join(b.get("text") or "" for b in blocks)
    _draw_closed(slot, text, seconds, any(b.get("redacted") for b in blocks))


class LiveThought:
    """The thinking of a streaming answer, drawn into `slot` (an `st.empty`) as its chunks arrive."""

    def __init__(self, slot) -> None:
        self.slot = slot
        self.view: LiveMarkdown | None = None
        self.text = ""
        self.redacted = False
        self.ttfr_ms: int | None = None
        self.seen_at: float | None = None
        self.closed = False

    @property
    def open(self) -> bool:
        return self.view is not None and not self.closed

    def update(self, text: str, data: dict) -> None:
        if self.closed:
            return
        if self.view is None:
            self.seen_at = time.monotonic()
            self.ttfr_ms = data.get("ttfr_ms")
            box = self.slot.container().expander("Thinking…", expanded=True, icon=":material/psychology:")
            self.view = LiveMarkdown(box)
        self.redacted = self.redacted or bool(data.get("redacted"))
        self.text += text
        self.view.update(text)

    def close(self, ttft_ms: int | None = None) -> None:
        """The answer started (or the stream ended): collapse to "Thought for N s"."""
        if self.view is None or self.closed:
            return
        self.closed = True
        seconds = thought_seconds(self.ttfr_ms, ttft_ms)
        if seconds is None and self.seen_at is not None:
            seconds = round(time.monotonic() - self.seen_at)
        _draw_closed(self.slot, self.text, seconds, self.redacted)

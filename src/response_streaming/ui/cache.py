"""Finished messages' Markdown, sanitised once: a cache keyed by message id and version.

Why: sanitising a message (and parsing its Markdown to do so) costs time in proportion to its
length, and every page run draws every message in view. The result depends only on the message's
text, so it is kept per process, shared by every session, and a message is sanitised again only
when it changed (Continue grows one; a generation's end writes one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from ..render import sanitize
from ..store import StoredMessage

EMPTY = "_(no text)_"


class RenderCache:
    """Sanitised Markdown per (message id, version), bounded, safe to share between sessions."""

    def __init__(self, size: int = 4096, render: Callable[[str], str] = sanitize) -> None:
        self.size, self.render = size, render
        self.misses = 0  # how many times `render` ran (tests read it)
        self._items: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(m: StoredMessage) -> tuple:
        # The version: status and text. Ids are never reused (schema 3), and a message's text only
        # changes when Continue grows it or its generation ends; hashing it costs next to nothing
        # beside sanitising it.
        return m.id, m.status, len(m.content), hash(m.content)

    def markdown(self, m: StoredMessage) -> str:
        if not m.content:
            return EMPTY
        return self._get(self.key(m), m.content)

    def sanitized(self, text: str) -> str:
        """Any other stored text (an answer's thinking), keyed by the text itself."""
        return self._get(("text", len(text), hash(text)), text)

    def _get(self, key: tuple, content: str) -> str:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        text = self.render(content)  # outside the lock: other sessions keep drawing meanwhile
        with self._lock:
            self.misses += 1
            self._items[key] = text
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return text


@st.cache_resource(show_spinner=False)
def render_cache() -> RenderCache:
    return RenderCache()

"""The finished part of a conversation: a window of its latest messages, drawn from a cache.

Why a window: the browser's work (and the websocket's bytes) on a full page run grows with every
message drawn, so a conversation of hundreds of messages opened slowly. The page draws the latest
`WINDOW` messages and a control that adds `WINDOW` earlier ones at a time; export, search and the
model still read the whole conversation from the database. Messages are drawn through `cache`.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ..store import StoredMessage
from . import messages, thinking
from .cache import render_cache

WINDOW = 40  # messages drawn at first, and added by each click on "Show earlier messages"


def tail_start(msgs: Sequence[StoredMessage]) -> int:
    """Index of the last turn (its prompt, then its answer): the part the page redraws on its own."""
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].role == "user":
            return i
    return 0


def _show_earlier(cid: str, count: int) -> None:
    st.session_state.setdefault("window", {})[cid] = count


def show(cid: str, msgs: Sequence[StoredMessage]) -> int | None:
    """Draw the finished messages before the last turn, latest `window` of them; returns the id of
    the last one drawn before the last turn (the tail is drawn after it), or None if there is none."""
    window = st.session_state.get("window", {}).get(cid, WINDOW)
    start, end = max(0, len(msgs) - window), tail_start(msgs)
    if start > 0:
        with st.container(horizontal=True, vertical_alignment="center", key="earlier-row"):
            st.caption(f"{start} earlier message{'s' if start != 1 else ''} not shown.")
            st.button(
                f"Show {min(WINDOW, start)} earlier",
                key="earlier",
                icon=":material/expand_less:",
                type="tertiary",
                on_click=_show_earlier,
                args=(cid, window + WINDOW),
            )
    cache = render_cache()
    for m in msgs[start:end]:
        f = messages.frame(m.role, actions=False)
        f.box.markdown(cache.markdown(m))
        if m.role == "assistant":
            thinking.show_stored(f.thought, m.meta)
        if m.role == "assistant":
            messages.answer_footer(f, m, last=False)
    return msgs[end - 1].id if end > 0 else None

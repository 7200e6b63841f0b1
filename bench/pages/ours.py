"""Bench page: our renderer, through the app's own streaming path.

As `ui/page.py` does it: a turn from `chat.start_turn` (its history store in a scratch SQLite
file), `box = st.container(key="answer")` and `stats = st.empty()` in the assistant message, then
`ui.live.stream_into(turn, box, stats)` (LiveMarkdown, live metrics, the worker thread that makes
Stop work). The app's `st.rerun()` afterwards is left out: it only redraws the finished page.
"""
import streamlit as st

from bench_page import OUT, run
from response_streaming import chat
from response_streaming.store import Store
from response_streaming.ui import live


@st.cache_resource
def store() -> Store:
    return Store(f"sqlite:///{OUT / 'bench-history.sqlite3'}")


def render(provider, params):
    turn = chat.start_turn(store(), store().create_conversation("bench"), provider, params, "bench")
    box = st.container(key="answer")
    stats = st.empty()
    live.stream_into(turn, box, stats)
    return turn.recorder


run(render)

"""Bench page: our renderer, through the app's own streaming path.

As `ui/tail.py` does it: a durable generation from `chat.start_turn` (its history and log in a
scratch SQLite file), `box = st.container(key="answer")` and `stats = st.empty()` in the assistant
message, then `ui.live.stream_into(gens, gid, box, stats)` (a viewer of the log: LiveMarkdown, live
metrics). The app's `st.rerun()` afterwards is left out: it only redraws the finished page.
"""

from types import SimpleNamespace

import streamlit as st
from bench_page import OUT, run

from response_streaming import chat
from response_streaming.generation import Generations
from response_streaming.store import Store
from response_streaming.ui import live


@st.cache_resource
def generations() -> Generations:
    return Generations(Store(f"sqlite:///{OUT / 'bench-history.sqlite3'}"))


def render(provider, params):
    gens = generations()
    cid = gens.store.create_conversation("bench")
    gid = chat.start_turn(gens, cid, provider, params, "bench")
    box = st.container(key="answer")
    stats = st.empty()
    status = live.stream_into(gens, gid, box, stats)
    return SimpleNamespace(status=status, text=gens.store.messages(cid)[-1].content)  # what `run` reads


run(render)

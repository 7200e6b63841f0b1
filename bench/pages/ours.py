"""Bench page: our renderer, used exactly as `webapp.main` uses it (LiveMarkdown + a live metrics line)."""
import streamlit as st

from bench_page import run
from response_streaming.chat import STATUS_NOTES
from response_streaming.render import LiveMarkdown
from response_streaming.webapp import metrics_line


def render(rec) -> None:
    view = LiveMarkdown(st.container(key="answer"))
    stats = st.empty()
    pieces = iter(rec)
    try:
        for piece in pieces:
            if view.update(piece):
                stats.caption(metrics_line(rec.live_metrics()))
    finally:
        pieces.close()
    view.finish(STATUS_NOTES.get(rec.status, ""))
    stats.caption(metrics_line(rec.live_metrics()))


run(render)

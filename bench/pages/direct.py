"""Bench page: the direct path the page used before durable generations, kept to measure what the log costs.

The provider's stream is read through a `Recorder` by a worker thread into a queue, and the script
draws each piece through `LiveMarkdown` as it arrives, with the live metrics line (as `ui/live.py`
did before the log): no database between the model and the page.
"""

import queue
import threading

import streamlit as st
from bench_page import recorder, run

from response_streaming.render import LiveMarkdown
from response_streaming.ui.format import metrics_line

HEARTBEAT = 0.1  # as the page's own viewer: the script gets control back this often
_END = object()


def render(provider, params):
    rec = recorder(provider, params)
    pieces: queue.SimpleQueue = queue.SimpleQueue()

    def work() -> None:
        try:
            for piece in rec:
                pieces.put(piece)
        finally:
            pieces.put(_END)

    threading.Thread(target=work, name="bench-direct", daemon=True).start()
    view = LiveMarkdown(st.container(key="answer"))
    stats = st.empty()
    while True:
        try:
            item = pieces.get(timeout=HEARTBEAT)
        except queue.Empty:
            view.update("")
            continue
        if item is _END:
            break
        if view.update(item):
            stats.caption(metrics_line(rec.live_metrics(), provider.name, provider.model, live=True))
    view.finish()
    stats.caption(metrics_line(rec.live_metrics(), provider.name, provider.model))
    return rec


run(render)

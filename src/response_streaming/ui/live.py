"""An answer while it streams: a viewer of its generation's log, drawn through `LiveMarkdown`.

The generation runs on its own (`generation`); this only reads its log. The script reads with a
short wait (`HEARTBEAT`) so it gets control back often: that is where Streamlit lands a click or a
closed tab, and where the metrics line is refreshed. Leaving (a rerun, a closed tab) stops nothing:
the next run, in this tab or another, attaches again. Only the Stop button stops the generation.
"""

from __future__ import annotations

import time

from ..chat import join_continuation
from ..generation import Generations
from ..render import LiveMarkdown, sanitize
from .format import metrics_line, status_note, waiting_line
from .thinking import LiveThought

HEARTBEAT = 0.1  # seconds a read waits for new text before the page refreshes its metrics
CHECK_EVERY = 2.0  # seconds between two looks at the generation's state while nothing arrives


def stream_into(gens: Generations, gid: str, box, stats, prior: str = "", thought=None) -> str:
    """Draw the generation `gid` into `box` and its live metrics into `stats` until it ends; returns its status.

    `prior`: the text the answer already had (Continue), drawn first; the new text is joined to it.
    `thought`: where the model's thinking goes (an `st.empty`; see `thinking.LiveThought`), if it thinks.
    """
    thinking = LiveThought(thought) if thought is not None else None
    info = gens.get(gid)
    provider, model = (info.provider, info.model) if info else ("", "")
    view = LiveMarkdown(box)
    if prior:
        view.update(prior)
    started = time.monotonic()
    after, tokens, ttft, first_seen = 0, 0, None, None
    status, checked = "", time.monotonic()
    while not status:
        chunks = gens.read(gid, after, wait=HEARTBEAT)
        text = ""
        for chunk in chunks:
            after = chunk.seq
            if chunk.kind == "reasoning":
                if thinking is not None:
                    thinking.update(chunk.text, chunk.data)
                continue
            if thinking is not None and thinking.open:
                thinking.close(chunk.data.get("ttft_ms"))  # the answer starts (or the stream ended)
            if chunk.kind == "text":
                piece = chunk.text
                if tokens == 0 and prior:
                    piece = join_continuation(prior, piece)[len(prior) :]
                tokens += chunk.data.get("n", 1)
                if first_seen is None:
                    first_seen, ttft = time.monotonic(), chunk.data.get("ttft_ms")
                text += piece
            elif chunk.terminal:
                status = chunk.data.get("status", "error")
        if text:
            # One update per read: a re-attach draws everything so far at once (LiveMarkdown draws a first
            # update at once and holds later ones for its interval), not its first chunk first.
            view.update(text)
        if not chunks:
            view.update("")  # LiveMarkdown may hold text back for a moment; a quiet stream still gets it drawn
            if time.monotonic() - checked > CHECK_EVERY:
                checked = time.monotonic()
                now = gens.get(gid)
                if now is None:  # its log expired meanwhile: the stored message has the answer
                    status = "complete"
                    break
        if status:
            break
        if first_seen is None and thinking is not None and thinking.open:
            stats.caption(sanitize(f"Thinking… {time.monotonic() - (thinking.seen_at or started):.0f} s"))
        elif first_seen is None:
            stats.caption(sanitize(waiting_line(time.monotonic() - started, provider, model)))
        else:
            elapsed = time.monotonic() - first_seen
            rate = round((tokens - 1) / elapsed, 2) if tokens > 1 and elapsed > 0 else None
            line = metrics_line(
                {"ttft_ms": ttft, "output_tokens": tokens, "tokens_per_s": rate}, provider, model, live=True
            )
            stats.caption(sanitize(line))
    if thinking is not None:
        thinking.close()
    view.finish(status_note(status))
    final = gens.get(gid)
    if final is not None:
        stats.caption(sanitize(metrics_line(final.metrics, provider, model)))
    return status

"""An answer while it streams: text through `LiveMarkdown`, metrics under it, and a Stop that works at once.

Why a worker thread: Streamlit stops a script (Stop, any click, a closed tab) by raising inside it,
but only at the script's next `st.*` call. Reading the provider in the script thread would leave
that check waiting for the next token, which may be seconds away (a slow first token, a stalled
upstream). Here a worker reads the stream into a queue and the script wakes every `HEARTBEAT` to
refresh the metrics, which is also the point where a Stop lands. The worker owns the provider
stream from start to end, so closing it (and freeing the local model's lock) happens in the thread
that opened it, as the model's lock requires.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Iterator

from ..chat import Turn, join_continuation
from ..render import LiveMarkdown, sanitize
from .format import metrics_line, status_note, waiting_line

log = logging.getLogger(__name__)

HEARTBEAT = 0.1  # seconds between two checks for Stop while nothing arrives
_END = object()


def background(turn: Turn) -> Iterator[str | None]:
    """The turn's pieces, read by a worker thread; `None` every HEARTBEAT while nothing arrives.

    Closing this iterator early tells the worker to close the stream after its current piece
    (at once if one is arriving; when it wakes if the upstream is stalled).
    """
    pieces: queue.SimpleQueue = queue.SimpleQueue()
    cancel = threading.Event()

    def work() -> None:
        try:
            for piece in turn:
                pieces.put(piece)
                if cancel.is_set():
                    break
        except BaseException:  # the Recorder turns errors into a status; this is only a last guard
            log.exception("answer worker failed")
        finally:
            turn.close()
            pieces.put(_END)

    threading.Thread(target=work, name="rs-answer", daemon=True).start()
    try:
        while True:
            try:
                item = pieces.get(timeout=HEARTBEAT)
            except queue.Empty:
                yield None
                continue
            if item is _END:
                return
            yield item
    finally:
        cancel.set()


def stream_into(turn: Turn, box, stats) -> None:
    """Draw the turn into `box` (a container) and its live metrics into `stats` (an `st.empty`).

    If the run is interrupted (Stop, any other click, a closed tab), the answer is saved as
    `stopped` with exactly the pieces that reached the page, so the redrawn page shows what the
    reader saw, and the stream is closed.
    """
    provider, model = turn.provider.name, turn.provider.model
    view = LiveMarkdown(box)
    if turn.prior:
        view.update(turn.prior)  # a continued answer starts from what was already there
    started = time.monotonic()
    received = 0  # pieces handed to the view; `turn.shown` counts those it has drawn
    ended = False
    stream = background(turn)
    try:
        for piece in stream:
            rec = turn.recorder
            if piece is None:
                # LiveMarkdown may hold text back for a moment; a quiet stream still gets it drawn.
                if turn.shown < received and view.update(""):
                    turn.shown = received
                if rec.first_at is None:
                    stats.caption(sanitize(waiting_line(time.monotonic() - started, provider, model)))
                else:
                    stats.caption(sanitize(metrics_line(rec.live_metrics(), provider, model, live=True)))
                continue
            if received == 0 and turn.prior:
                piece = join_continuation(turn.prior, piece)[len(turn.prior):]
            received += 1
            if view.update(piece):
                # What the reader has seen: the run that replaces this one (a click) saves this much.
                turn.shown = received
                stats.caption(sanitize(metrics_line(rec.live_metrics(), provider, model, live=True)))
        ended = True
    finally:
        if not ended:
            turn.stop(turn.shown)
        stream.close()
    view.finish(status_note(turn.recorder.status))
    stats.caption(sanitize(metrics_line(turn.recorder.live_metrics(), provider, model)))

"""What the three bench pages share, so that they differ only in how they draw the answer.

Each page shows a Go button; a click streams the bench text from `ReplayProvider` at the rate and
length named in the URL (`?tokens=500&rate=1000&run=id`). The provider is wrapped in a tap that
notes, with `time.time()`, when the first and the last token left it; the page writes those marks
to `$BENCH_OUT/<run>.json` when it ends, and the browser side compares them with its own
`performance.timeOrigin + performance.now()` (the same wall clock: one machine).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/common.py: the bench text
from common import bench_text
from response_streaming.events import Event, Message, Params, TextDelta
from response_streaming.providers.replay import ReplayProvider
from response_streaming.recorder import Recorder

TEXT = bench_text()
OUT = Path(os.environ.get("BENCH_OUT", "/tmp"))
PROMPT = [Message("user", "bench")]


@dataclass
class TappedReplay:
    """`ReplayProvider` with a note of when its first and last tokens were emitted."""

    rate: float
    marks: dict
    name: str = "replay"
    model: str = "replay"

    def stream(self, messages, params: Params) -> Iterator[Event]:
        for event in ReplayProvider(text=TEXT, rate=self.rate).stream(messages, params):
            if isinstance(event, TextDelta):
                now = time.time()
                self.marks["first_emit"] = self.marks["first_emit"] or now
                self.marks["last_emit"] = now
                self.marks["tokens"] += 1
            yield event


def run(render: Callable[[TappedReplay, Params], Recorder]) -> None:
    """Draw the page; on Go, `render(provider, params)` streams the answer inside an assistant message."""
    st.set_page_config(page_title="bench")
    tokens = int(st.query_params.get("tokens", 500))
    rate = float(st.query_params.get("rate", 1000))
    run_id = st.query_params.get("run", "manual")
    # Streamlit's frontend loads its code highlighter and fonts lazily, the first time a page shows
    # a code block, bold/italic or inline code (~0.5 s here). A chat page has shown them long before
    # a typical answer; drawing them once here keeps that one-off load out of the answer's timings.
    st.markdown("Bench page: **bold**, _italic_, `code`\n\n```\nwarm = True\n```")
    if not st.button("Go", type="primary"):
        return
    marks = {"start": time.time(), "first_emit": None, "last_emit": None, "tokens": 0, "status": "stopped"}
    rec = None
    try:
        with st.chat_message("assistant"):
            rec = render(TappedReplay(rate, marks), Params(max_tokens=tokens))
        marks["status"] = rec.status
    except BaseException as err:  # the renderer broke, or Streamlit stopped the script (StopException)
        marks["error"] = f"{type(err).__name__} after {marks['tokens']:,} tokens"
        raise
    finally:
        # Written last and renamed into place, so the driver never reads half a file.
        marks.update(end=time.time(), answer_bytes=len(rec.text.encode()) if rec else 0)
        out = OUT / f"{run_id}.json"
        out.with_suffix(".tmp").write_text(json.dumps(marks))
        out.with_suffix(".tmp").rename(out)


def recorder(provider: TappedReplay, params: Params) -> Recorder:
    """The provider's stream through a `Recorder`, as every front end reads it."""
    return Recorder(provider.stream(PROMPT, params))

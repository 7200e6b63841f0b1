"""Stored messages on the page, with what can be done after an answer.

Buttons never act here: their callbacks leave an `action` in the session for `page` to carry out
on the run they trigger, so every model call goes through one place.

Why buttons are drawn disabled while an answer streams, rather than left out: Streamlit keeps a
widget that a new run did not draw (it matches widgets by key) on the page, faded but still
clickable, until that run ends, and a run that streams an answer lasts long. Drawing the same
keys disabled replaces them at once. Every message has the same frame (text, note, metrics, a row
of action slots) so that things stay where they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ..render import sanitize
from ..store import StoredMessage
from . import thinking
from .cache import render_cache
from .format import CUT_NOTE, metrics_line, status_note

ACTION_SLOTS = 3


@dataclass
class Frame:
    thought: DeltaGenerator  # the answer's thinking, above its text (an `st.empty`; see `thinking`)
    box: DeltaGenerator  # the message text (a container)
    note: DeltaGenerator  # status, error or hint (an `st.empty`)
    metrics: DeltaGenerator  # the metrics line (an `st.empty`)
    actions: list  # ACTION_SLOTS `st.empty` slots for buttons


def frame(role: str, answer: bool = False, actions_key: str | None = None, actions: bool = True) -> Frame:
    """Draw a message's frame; `answer=True` keys its text box `answer` (the latest answer on the page).

    `actions=False` leaves out the row of action slots: the earlier messages never get buttons.
    """
    with st.chat_message(role):
        thought = st.empty()
        box = st.container(key="answer") if answer else st.container()
        note, metrics = st.empty(), st.empty()
        slots = []
        if actions:
            with st.container(horizontal=True, key=actions_key):
                slots = [st.empty() for _ in range(ACTION_SLOTS)]
    return Frame(thought, box, note, metrics, slots)


def request(kind: str, **details) -> None:
    """Button callback: ask the next run to do something in the current conversation."""
    st.session_state.action = {"kind": kind, "cid": st.query_params.get("c"), **details}


def start_edit(cid: str, message: StoredMessage) -> None:
    st.session_state.input = message.content
    st.session_state.editing = {"cid": cid, "id": message.id}


def can_continue(m: StoredMessage) -> bool:
    cut = m.meta.get("metrics", {}).get("stop_reason") == "max_tokens"
    return bool(m.content.strip()) and (cut or m.status in ("stopped", "incomplete", "interrupted"))


def show_tail(cid: str | None, msgs: Sequence[StoredMessage], live: bool, hide: int | None = None) -> None:
    """Draw the last turn (and any after the earlier part was drawn). The last answer gets the actions
    (and the `answer` key) unless one streams."""
    shown = [m for m in msgs if m.id != hide]
    cache = render_cache()
    for i, m in enumerate(shown):
        last = i == len(shown) - 1
        answer = last and m.role == "assistant" and not live
        f = frame(m.role, answer=answer, actions_key="actions" if answer else None)
        f.box.markdown(cache.markdown(m))
        if m.role == "assistant":
            thinking.show_stored(f.thought, m.meta)
            answer_footer(f, m, last and not live)
        elif last and live:
            f.actions[0].button("Edit", key="edit", icon=":material/edit:", type="tertiary", disabled=True)
        elif last:
            _unanswered(f, cid, m)
        elif not live and i == len(shown) - 2:
            f.actions[0].button(
                "Edit",
                key="edit",
                icon=":material/edit:",
                type="tertiary",
                on_click=start_edit,
                args=(cid, m),
                help="Put this prompt back in the box; Go replaces it and its answer.",
            )


def busy_actions(f: Frame) -> None:
    """The actions of an answer that is still streaming: there, but off until it ends."""
    f.actions[0].button("Regenerate", key="regenerate", icon=":material/refresh:", disabled=True)
    f.actions[1].button("Continue", key="continue", icon=":material/fast_forward:", disabled=True)
    with f.actions[2].container():
        st.popover("Copy", icon=":material/content_copy:", key="copy", disabled=True)


def _unanswered(f: Frame, cid: str | None, m: StoredMessage) -> None:
    # The answer was never saved (the server stopped mid-answer), or it is being written elsewhere.
    f.note.caption("No answer is stored for this prompt yet.")
    f.actions[0].button(
        "Answer",
        key="regenerate",
        icon=":material/refresh:",
        on_click=request,
        args=("regenerate",),
        kwargs={"id": None},
    )
    f.actions[1].button("Edit", key="edit", icon=":material/edit:", type="tertiary", on_click=start_edit, args=(cid, m))


def answer_footer(f: Frame, m: StoredMessage, last: bool) -> None:
    metrics = m.meta.get("metrics", {})
    if m.status == "error":
        f.note.error(sanitize(m.error or "The answer failed."), icon=":material/error:")
    elif status_note(m.status):
        f.note.caption(status_note(m.status))
    elif metrics.get("stop_reason") == "max_tokens" and last:
        f.note.caption(CUT_NOTE)
    line = metrics_line(metrics, m.meta.get("provider", ""), m.meta.get("model", ""))
    if line:
        f.metrics.caption(sanitize(line))
    if not last:
        return
    failed = m.status in ("error", "incomplete")  # an interrupted answer offers Regenerate and Continue
    f.actions[0].button(
        "Retry" if failed else "Regenerate",
        key="regenerate",
        icon=":material/refresh:",
        type="primary" if m.status == "error" else "secondary",
        on_click=request,
        args=("regenerate",),
        kwargs={"id": m.id},
    )
    if can_continue(m):
        f.actions[1].button(
            "Continue",
            key="continue",
            icon=":material/fast_forward:",
            on_click=request,
            args=("continue",),
            kwargs={"id": m.id},
        )
    if not m.content:
        return
    with f.actions[2].container(), st.popover("Copy", icon=":material/content_copy:", key="copy"):
        st.caption("The copy icon at the top right of the box copies the answer as Markdown.")
        st.code(m.content, language="markdown", wrap_lines=True)

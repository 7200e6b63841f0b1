"""Stored messages on the page, with what can be done after an answer.

Buttons never act here: their callbacks leave an `action` in the session for `page` to carry out
on the run they trigger, so every model call goes through one place.
"""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from ..chat import STATUS_NOTES
from ..render import sanitize
from ..store import StoredMessage
from .format import metrics_line

CUT_NOTE = "✂ Cut at the max-tokens limit: Continue asks the model to go on."


def request(kind: str, **details) -> None:
    """Button callback: ask the next run to do something in the current conversation."""
    st.session_state.action = {"kind": kind, "cid": st.query_params.get("c"), **details}


def start_edit(cid: str, message: StoredMessage) -> None:
    st.session_state.input = message.content
    st.session_state.editing = {"cid": cid, "id": message.id}


def can_continue(m: StoredMessage) -> bool:
    cut = m.meta.get("metrics", {}).get("stop_reason") == "max_tokens"
    return bool(m.content.strip()) and (cut or m.status in ("stopped", "incomplete"))


def show_history(cid: str, msgs: Sequence[StoredMessage], live: bool, hide: int | None = None) -> None:
    """Draw the conversation. The last answer gets the actions (and the `answer` key) unless one streams."""
    shown = [m for m in msgs if m.id != hide]
    for i, m in enumerate(shown):
        last = i == len(shown) - 1 and not live
        with st.chat_message(m.role):
            box = st.container(key="answer") if last and m.role == "assistant" else st.container()
            box.markdown(sanitize(m.content) if m.content else "_(no text)_")
            if m.role == "assistant":
                _answer_footer(m, last)
            elif last:
                _unanswered(cid, m)
            elif not live and i == len(shown) - 2:
                st.button("Edit", key="edit", icon=":material/edit:", type="tertiary", on_click=start_edit, args=(cid, m),
                          help="Put this prompt back in the box; Go replaces it and its answer.")


def _unanswered(cid: str, m: StoredMessage) -> None:
    # The answer was never saved (the server stopped mid-answer), or it is being written elsewhere.
    st.caption("No answer is stored for this prompt yet.")
    with st.container(horizontal=True):
        st.button("Answer", key="regenerate", icon=":material/refresh:", on_click=request, args=("regenerate",),
                  kwargs={"id": None})
        st.button("Edit", key="edit", icon=":material/edit:", type="tertiary", on_click=start_edit, args=(cid, m))


def _answer_footer(m: StoredMessage, last: bool) -> None:
    metrics = m.meta.get("metrics", {})
    if m.status == "error":
        st.error(m.error or "The answer failed.", icon=":material/error:")
    elif m.status in STATUS_NOTES:
        st.caption(STATUS_NOTES[m.status])
    elif metrics.get("stop_reason") == "max_tokens" and last:
        st.caption(CUT_NOTE)
    line = metrics_line(metrics, m.meta.get("provider", ""), m.meta.get("model", ""))
    if line:
        st.caption(line)
    if not last:
        return
    with st.container(horizontal=True, key="actions"):
        failed = m.status in ("error", "incomplete")
        st.button("Retry" if failed else "Regenerate", key="regenerate", icon=":material/refresh:",
                  type="primary" if m.status == "error" else "secondary",
                  on_click=request, args=("regenerate",), kwargs={"id": m.id})
        if can_continue(m):
            st.button("Continue", key="continue", icon=":material/fast_forward:",
                      on_click=request, args=("continue",), kwargs={"id": m.id})
        with st.popover("Copy", icon=":material/content_copy:"):
            st.caption("The copy icon at the top right of the box copies the answer as Markdown.")
            st.code(m.content, language="markdown", wrap_lines=True)

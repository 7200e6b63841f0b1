"""One run of the whole page: read the conversation from the database, draw the sidebar, the earlier
messages (`history`), then the part that starts and shows answers (`tail`, a fragment that reruns
on its own) and the Stop button.

Streamlit reruns this script on a click outside `tail` (the sidebar, Stop, "Show earlier"), on a
reload and when `tail` asks for it. The database is the source of truth (a reload, a restart or
another replica reads the same rows); the session carries the pending action, the window of
messages shown, and where the earlier part ends (`view`), which `tail` reads when it reruns alone.
"""

from __future__ import annotations

import logging

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from ..config import get_settings
from ..render import sanitize
from ..store import NOT_FOUND
from . import auth, history, resources, sidebar, tail

log = logging.getLogger(__name__)


def _stop_row() -> None:
    # Outside `tail` on purpose: a click here reruns the whole page at once (a click inside a
    # fragment would wait for its run to end); its callback stops the generation first
    # (`tail.stop_live`). `tail` hides this row whenever no answer streams.
    with st.container(key="stop-row", horizontal=True):
        st.button("Stop", key="stop", icon=":material/stop_circle:", on_click=tail.stop_live)


def _page() -> None:
    settings = get_settings()
    owner = auth.gate(settings)  # with sign-in: stops here for visitors; the history is scoped to the user
    try:
        store = resources.store(settings.sqlalchemy_url).scoped(owner)
    except SQLAlchemyError as err:
        log.exception("could not open the history database")
        where = "RS_DATABASE_URL" if settings.database_url else f"RS_DATA_DIR ({settings.data_dir})"
        st.error(
            sanitize(
                f"The history database could not be opened ({type(err).__name__}). Check {where} and that "
                "the database is running; the details are in the server log."
            )
        )
        return

    sidebar.follow_address()
    cid = st.query_params.get("c")
    if cid and not store.get_conversation(cid):
        cid = None  # a stale or deleted link, or someone else's conversation: start fresh rather than fail
        st.query_params.pop("c", None)
        st.info(sanitize(NOT_FOUND + " A new chat is open instead."), icon=":material/link_off:")
    list_box = st.sidebar.container()
    sidebar.controls(settings)
    sidebar.conversations(list_box, store, cid, store.get_conversation(cid) if cid else None)

    st.session_state.seen = tail.signature(store, cid)  # before reading: see `tail.watch`
    msgs = store.messages(cid) if cid else []
    with st.container():
        after = history.show(cid, msgs) if cid else None
    st.session_state.view = {"cid": cid, "after": after}
    st.session_state.full_run = True
    # Stop and the watcher are drawn before `tail`, below its place: `tail` may stream for a long time
    # in this run (a reload mid-answer), and Stop must be there meanwhile.
    answers = st.container()
    _stop_row()
    if cid:
        tail.watch(store)
    with answers:
        tail.tail(store, settings)


def main() -> None:
    st.set_page_config(page_title="Response Streaming")
    st.title("Response Streaming")
    with resources.errors_in_one_line():
        _page()

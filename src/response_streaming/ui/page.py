"""One run of the page: read the conversation from the database, carry out the requested action, draw.

Streamlit reruns this script on every interaction. The database is the source of truth (a reload,
a restart or another replica reads the same rows); the session only carries the pending action.
An answer streams at the end of a run; when it ends the page reruns, so every finished answer is
drawn by the same code (`messages.show_history`), with its actions.
"""
from __future__ import annotations

import logging

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from .. import chat
from ..config import Settings, get_settings
from ..errors import BadRequest, ConfigError, ResponseStreamingError, Throttled
from ..providers import make_provider, provider_info
from ..store import Store
from . import live, messages, sidebar

log = logging.getLogger(__name__)
# How long a run waits for the answer its click interrupted to be saved (see `_page`).
SAVE_WAIT = 3.0


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


@st.cache_resource(show_spinner="Loading the model…")
def _provider(settings: Settings):
    return make_provider(settings)


def get_provider(settings: Settings):
    """The provider for these settings, or a `ResponseStreamingError` a person can act on."""
    try:
        return _provider(settings)
    except ResponseStreamingError:
        raise
    except ImportError as err:
        name = settings.provider
        if (err.name or "").startswith("response_streaming"):
            raise ConfigError(f"The {name} provider is not part of this version of the app yet; "
                              "pick another provider in the sidebar.") from err
        raise ConfigError(f"The {name} provider needs the Python package {err.name or '(unknown)'}: "
                          f"run `{provider_info(name).install}`, or pick another "
                          "provider in the sidebar.") from err
    except Exception as err:
        log.exception("provider %s failed to start", settings.provider)
        raise ConfigError(f"The {settings.provider} provider could not start ({type(err).__name__}); check its "
                          "settings (the details are in the server log) or pick another provider.") from err


def _submit() -> None:
    # Runs before the rerun's script body: move the text out of the widget so the box clears.
    text = st.session_state.get("input", "")
    st.session_state.input = ""
    editing = st.session_state.pop("editing", None)
    if editing and editing["cid"] == st.query_params.get("c"):
        messages.request("edit", id=editing["id"], prompt=text)
    else:
        messages.request("send", prompt=text)


def _cancel_edit() -> None:
    st.session_state.pop("editing", None)
    st.session_state.input = ""


def _start(store: Store, cid: str | None, action: dict, settings: Settings, params) -> tuple[chat.Turn | None, str | None]:
    """Carry out an action: returns the turn to stream (and the conversation it is in)."""
    kind = action["kind"]
    if action.get("cid") != cid:
        return None, cid  # the page moved to another conversation since the click: nothing to do
    if kind in ("send", "edit"):
        chat.check_prompt(action["prompt"])
    provider = get_provider(settings)  # before any change, so a bad provider changes nothing
    if kind == "send":
        if not cid:
            cid = store.create_conversation(title=action["prompt"].strip()[:60])
            st.query_params["c"] = cid
        return chat.start_turn(store, cid, provider, params, action["prompt"]), cid
    if not cid:
        return None, cid
    if kind == "edit":
        return chat.edit_turn(store, cid, provider, params, action["id"], action["prompt"]), cid
    if kind == "regenerate":
        return chat.regenerate_turn(store, cid, provider, params, action.get("id")), cid
    if kind == "continue":
        return chat.continue_turn(store, cid, provider, params, action["id"]), cid
    return None, cid


def _composer(streaming: bool, replacing: bool = False) -> None:
    # A fixed shape (edit notice slot, box, Go, Stop slot); see `messages` on why buttons are drawn
    # disabled while an answer streams instead of being left out.
    notice = st.empty()
    editing = st.session_state.get("editing")
    if replacing or (editing and editing["cid"] == st.query_params.get("c") and not streaming):
        with notice.container(horizontal=True, vertical_alignment="center"):
            st.info("Replacing your last prompt and its answer." if replacing else
                    "Editing your last prompt: Go replaces it and its answer.", icon=":material/edit:")
            st.button("Cancel edit", key="cancel-edit", on_click=_cancel_edit, disabled=replacing)
    # on_change="ignore": typing the next prompt while an answer streams must not interrupt it.
    st.text_area("Input text", label_visibility="collapsed", key="input", on_change="ignore",
                 placeholder="Ask something, then press Go")
    with st.container(horizontal=True):
        # One stream per conversation: Go is off while one streams; Stop (like any click) ends it.
        st.button("Go", type="primary", key="go", on_click=_submit, disabled=streaming)
        stop = st.empty()
        if streaming:
            stop.button("Stop", key="stop", icon=":material/stop_circle:")


def _page() -> None:
    settings = get_settings()
    try:
        store = _store(settings.sqlalchemy_url)
    except SQLAlchemyError as err:
        log.exception("could not open the history database")
        where = "RS_DATABASE_URL" if settings.database_url else f"RS_DATA_DIR ({settings.data_dir})"
        st.error(f"The history database could not be opened ({type(err).__name__}). Check {where} and that the "
                 "database is running; the details are in the server log.")
        return

    # Streamlit starts the new run at once on a click (fast reruns) while the interrupted run is
    # still unwinding in its own thread: save its answer from here, as far as it reached the page,
    # so this run draws it (a no-op if it already ended and saved itself).
    previous = st.session_state.pop("live", None)
    if previous is not None:
        previous.stop(previous.shown)
        previous.finished.wait(SAVE_WAIT)

    sidebar.follow_address()
    cid = st.query_params.get("c")
    if cid and not store.get_conversation(cid):
        cid = None  # a stale or deleted link: start fresh rather than fail
        st.query_params.pop("c", None)
    list_box = st.sidebar.container()
    run_settings, params = sidebar.controls(settings)

    turn, problem = None, None
    action = st.session_state.pop("action", None)
    if action:
        try:
            turn, cid = _start(store, cid, action, run_settings, params)
        except ResponseStreamingError as err:
            problem = err

    conversation = store.get_conversation(cid) if cid else None
    msgs = store.messages(cid) if cid else []
    sidebar.conversations(list_box, store, cid, conversation, msgs)
    with st.container():
        hide = turn.continues.id if turn and turn.continues else None
        messages.show_history(cid, msgs, live=turn is not None, hide=hide)
        # The live answer takes the place the answer it replaces had (regenerate, edit, continue).
        answer = messages.frame("assistant", answer=True) if turn else None
        if answer:
            messages.busy_actions(answer)
        if cid and not turn and store.busy(cid):
            st.info("An answer is being written in this conversation in another tab or window; reload to see it.",
                    icon=":material/hourglass_top:")
        if problem is not None:
            if isinstance(problem, (BadRequest, Throttled)):
                st.warning(str(problem))
            else:
                st.error(str(problem), icon=":material/error:")
    _composer(streaming=turn is not None, replacing=bool(turn and action and action["kind"] == "edit"))
    if turn:
        st.session_state.live = turn
        live.stream_into(turn, answer.box, answer.metrics)
        st.rerun()  # draw the finished answer with its actions, and turn Go back on


def main() -> None:
    st.set_page_config(page_title="Response Streaming")
    st.title("Response Streaming")
    try:
        _page()
    except SQLAlchemyError:
        log.exception("database error")
        st.error("The history database could not be reached. Check that it is running, then reload the page; "
                 "the details are in the server log.")
    except ResponseStreamingError as err:
        st.error(str(err))
    except Exception:  # a bug: say so in one line, never show a traceback
        log.exception("unexpected error in the page")
        st.error("Something went wrong on the server (the details are in its log). Reload the page to try again.")

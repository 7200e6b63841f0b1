"""The part of the page that starts and shows answers: the last turn, the live answer, the composer.

It is an `st.fragment`, so a click on Go, Regenerate, Continue or Edit reruns only this part, never
the earlier messages (`history`) or the sidebar: the first token no longer waits for the whole
conversation to be redrawn, and a long conversation streams as fast as a short one.

Why a fragment (and not caching alone, or a hand-made polling loop): Streamlit redraws everything a
run draws; a cache saves the server's work per message but every message is still re-sent and
re-rendered by the browser on each run. A fragment's run sends only what it draws. The catch is
that a click inside a fragment does not interrupt a run of that fragment that is still going (it
waits for it to end, Streamlit's `script_requests`), so Stop lives outside it (see `page`): a click
there reruns the whole page. The answer itself is a durable generation: leaving it (any click, a
reload, a closed tab) only stops watching it; the next run attaches again. Only Stop ends it.
"""

from __future__ import annotations

import streamlit as st

from .. import chat
from ..config import Settings
from ..errors import BadRequest, ResponseStreamingError, Throttled
from ..events import Params
from ..generation import Generations
from ..render import sanitize
from ..store import Store, StoredMessage
from . import live, messages, sidebar
from .resources import errors_in_one_line, generations, get_provider

# The Stop row is drawn by the whole page (see `page`) and shown by this part while an answer streams.
HIDE_STOP = "<style>.st-key-stop-row { display: none; }</style>"
# Seconds between two looks for a change made elsewhere (an answer started in another tab or replica).
WATCH_EVERY = 1.0


def stop_live() -> None:
    """Stop's callback: end the answer this session watches (wherever it runs), before the page redraws."""
    live_answer = st.session_state.pop("live", None)
    if live_answer is not None:
        live_answer["gens"].stop(live_answer["gid"])


def _streaming(msgs: list[StoredMessage]) -> StoredMessage | None:
    """The answer being written in this conversation (by this tab, another one, or another replica)."""
    last = msgs[-1] if msgs else None
    return last if last and last.status == "streaming" and last.meta.get("generation_id") else None


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


def _start(
    gens: Generations, store: Store, cid: str | None, action: dict, settings: Settings, params: Params
) -> tuple[str | None, str | None]:
    """Carry out an action: returns the generation it started (and the conversation it is in).

    `store` is the page's, scoped to the signed-in user (`auth`): the chat functions refuse anyone
    else's conversation, and a new one belongs to that user."""
    owner = store.owner
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
        return chat.start_turn(gens, cid, provider, params, action["prompt"], owner=owner), cid
    if not cid:
        return None, cid
    if kind == "edit":
        return chat.edit_turn(gens, cid, provider, params, action["id"], action["prompt"], owner=owner), cid
    if kind == "regenerate":
        return chat.regenerate_turn(gens, cid, provider, params, action.get("id"), owner=owner), cid
    if kind == "continue":
        return chat.continue_turn(gens, cid, provider, params, action["id"], owner=owner), cid
    return None, cid


def _composer(streaming: bool, replacing: bool = False) -> None:
    # A fixed shape (edit notice slot, box, Go); see `messages` on why buttons are drawn disabled
    # while an answer streams instead of being left out.
    notice = st.empty()
    editing = st.session_state.get("editing")
    if replacing or (editing and editing["cid"] == st.query_params.get("c") and not streaming):
        with notice.container(horizontal=True, vertical_alignment="center"):
            st.info(
                "Replacing your last prompt and its answer."
                if replacing
                else "Editing your last prompt: Go replaces it and its answer.",
                icon=":material/edit:",
            )
            st.button("Cancel edit", key="cancel-edit", on_click=_cancel_edit, disabled=replacing)
    # on_change="ignore": typing the next prompt while an answer streams must not interrupt it.
    st.text_area(
        "Input text",
        label_visibility="collapsed",
        key="input",
        on_change="ignore",
        placeholder="Ask something, then press Go",
    )
    with st.container(horizontal=True):
        # One stream per conversation: Go is off while one streams; only Stop ends it.
        st.button("Go", type="primary", key="go", on_click=_submit, disabled=streaming)
        # Always the same slot, so that this run's content replaces the last run's at once.
        stop_rule = st.empty()
        if not streaming:
            stop_rule.markdown(HIDE_STOP, unsafe_allow_html=True)


@st.fragment
def tail(store: Store, settings: Settings) -> None:
    """Draw the messages after `st.session_state.view["after"]` (the last turn), then the composer;
    carry out a pending action and stream its answer here."""
    with errors_in_one_line():  # a rerun of this part alone does not pass through the page's handler
        _tail(store, settings)


def _tail(store: Store, settings: Settings) -> None:
    gens = generations(settings.sqlalchemy_url)
    inline = st.session_state.pop("full_run", False)  # drawn by a run of the whole page
    view = st.session_state.get("view") or {}
    cid, after = view.get("cid"), view.get("after")
    problem, created = None, False
    action = st.session_state.pop("action", None)
    if action:
        try:
            _, new_cid = _start(gens, store, cid, action, *sidebar.chosen(settings))
            created, cid = new_cid != cid, new_cid
        except ResponseStreamingError as err:
            problem = err
    if created:
        after = None
        st.session_state.view = {"cid": cid, "after": None}

    # What this run saw, taken before reading: `watch` compares it with the database later.
    st.session_state.seen = signature(store, cid)
    # All rows, then the tail: the model reads the whole history for each answer anyway.
    msgs = [m for m in store.messages(cid) if after is None or m.id > after] if cid else []
    # An answer being written, started by this run or earlier (a reload, another tab or replica): watch it.
    streaming = _streaming(msgs)
    with st.container():
        messages.show_tail(cid, msgs, live=streaming is not None, hide=streaming.id if streaming else None)
        # The live answer takes the place the answer it replaces had (regenerate, edit, continue).
        answer = messages.frame("assistant", answer=True) if streaming else None
        if answer:
            messages.busy_actions(answer)
        if cid and not streaming and store.busy(cid):
            # Started elsewhere a moment ago: `watch` brings it here as soon as its message exists.
            st.info(
                "An answer is being written in this conversation in another tab or window.",
                icon=":material/hourglass_top:",
            )
        if problem is not None:
            if isinstance(problem, (BadRequest, Throttled)):
                st.warning(sanitize(str(problem)))
            else:
                st.error(sanitize(str(problem)), icon=":material/error:")
    _composer(streaming=streaming is not None, replacing=bool(streaming and action and action["kind"] == "edit"))
    if streaming and answer:
        gid = streaming.meta["generation_id"]
        st.session_state.live = {"gens": gens, "gid": gid}
        live.stream_into(gens, gid, answer.box, answer.metrics, prior=streaming.content, thought=answer.thought)
        st.session_state.pop("live", None)
        st.session_state.seen = signature(store, cid)  # the ending is this run's own change
        # Draw the finished answer with its actions and turn Go back on. Only this part reruns,
        # unless a new conversation must appear in the sidebar (or this run is the whole page's,
        # where Streamlit allows no rerun of a fragment alone).
        st.rerun(scope="app" if created or inline else "fragment")


def signature(store: Store, cid: str | None) -> tuple:
    """Two cheap reads that change whenever the conversation does (a message added or rewritten moves
    `updated_at`; a generation starts or ends) without reading its messages."""
    if not cid:
        return ()
    conversation = store.get_conversation(cid)
    return (conversation or {}).get("updated_at"), store.busy(cid)


@st.fragment(run_every=WATCH_EVERY)
def watch(store: Store) -> None:
    """Rerun the page when the conversation changed since this tab drew it: an answer started in
    another tab or replica then shows here live, and one that ended there shows its ending.

    A separate fragment that draws nothing, so its runs every `WATCH_EVERY` touch neither the
    messages nor the composer (a prompt being typed stays as it is). While `tail` streams, its own
    runs queue behind that run (Streamlit runs one at a time per session) and find nothing new.
    """
    with errors_in_one_line():
        view = st.session_state.get("view") or {}
        seen = st.session_state.get("seen")
        if view.get("cid") and seen is not None and seen != signature(store, view["cid"]):
            st.rerun()

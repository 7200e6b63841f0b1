"""The Streamlit page. It holds no provider logic: it reads history from the store, draws it, hands
the live stream to `LiveMarkdown`, and lets `chat.stream_turn` save the result.

Streamlit reruns this script on every interaction and abandons a running stream by raising inside
it; the stream is closed in `finally` and the partial answer is saved as `stopped` there.
"""
from __future__ import annotations

import streamlit as st

from .chat import STATUS_NOTES, check_prompt, stream_turn
from .config import Settings, get_settings
from .errors import ResponseStreamingError
from .providers import make_provider
from .render import LiveMarkdown, sanitize
from .store import Store


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


@st.cache_resource(show_spinner="Loading the model…")
def _provider(settings: Settings):
    return make_provider(settings)


def metrics_line(m: dict, status: str = "") -> str:
    parts = []
    if m.get("ttft_ms") is not None:
        parts.append(f"first token {m['ttft_ms']} ms")
    if m.get("tokens_per_s"):
        parts.append(f"{m['tokens_per_s']:.1f} tokens/s")
    if m.get("input_tokens") is not None:
        parts.append(f"{m['input_tokens']} in / {m.get('output_tokens', 0)} out")
    elif m.get("output_tokens"):
        parts.append(f"{m['output_tokens']} out")
    if status and status != "complete":
        parts.append(status)
    return " · ".join(parts)


def _submit() -> None:
    # Runs before the rerun's script body: move the text out of the widget so the box clears.
    st.session_state.pending = st.session_state.get("input", "")
    st.session_state.input = ""


def _show_message(m) -> None:
    with st.chat_message(m.role):
        st.markdown(sanitize(m.content) if m.content else "_(no text)_")
        if m.role == "assistant":
            if m.status == "error":
                st.error(m.error or "The answer failed.")
            elif m.status in STATUS_NOTES:
                st.caption(STATUS_NOTES[m.status])
            line = metrics_line(m.meta.get("metrics", {}), "")
            if line:
                st.caption(line)


def main() -> None:
    st.set_page_config(page_title="Response Streaming")
    st.title("Response Streaming")
    settings = get_settings()
    store = _store(settings.sqlalchemy_url)

    cid = st.query_params.get("c")
    if cid and not store.get_conversation(cid):
        cid = None  # a stale link: start fresh rather than fail
    for m in store.messages(cid) if cid else []:
        _show_message(m)

    st.text_area("Input text", label_visibility="collapsed", key="input")
    st.button("Go", type="primary", on_click=_submit)
    prompt = st.session_state.pop("pending", None)
    if prompt is None:
        return
    try:
        check_prompt(prompt)
        provider = _provider(settings)
    except ResponseStreamingError as err:
        st.warning(str(err))
        return
    if not cid:
        cid = store.create_conversation(title=prompt.strip()[:60])
        st.query_params["c"] = cid
    stop = st.button("Stop", key="stop")  # any click reruns the script, which stops the stream below
    del stop
    with st.chat_message("user"):
        st.markdown(sanitize(prompt))
    with st.chat_message("assistant"):
        view = LiveMarkdown(st.container(key="answer"))
        stats = st.empty()
        rec, pieces = stream_turn(store, cid, provider, settings.default_params(), prompt)
        try:
            for piece in pieces:
                if view.update(piece):
                    stats.caption(metrics_line(rec.live_metrics()))
        finally:
            pieces.close()
        view.finish(STATUS_NOTES.get(rec.status, ""))
        if rec.status == "error":
            st.error(rec.error)
        stats.caption(metrics_line(rec.live_metrics()))

"""The sidebar: conversations (new, switch, rename, delete, search, export), provider, model, parameters.

Parameter widgets use `on_change="ignore"`: changing them never reruns the page, so it never
interrupts an answer that is streaming; the values are read at the next Go.
"""

from __future__ import annotations

import re

import streamlit as st

from .. import users
from ..config import Settings
from ..errors import ConversationNotFound
from ..events import EFFORTS, Params
from ..export import export_json, export_markdown
from ..providers import PROVIDERS
from ..reasoning import takes_effort
from ..render import sanitize
from ..store import Store, StoredMessage
from .format import plain

PROVIDER_LABELS = {p.name: p.label for p in PROVIDERS}


def open_conversation(cid: str | None) -> None:
    """Callback: switch the page (and its URL) to a conversation, or to a new one.

    The address itself is changed by the run this triggers (`follow_address`): a change made in a
    callback reaches the browser's address bar only sometimes.
    """
    st.session_state.goto = cid or ""
    st.session_state.pop("editing", None)


def follow_address() -> None:
    """Apply a conversation switch asked for by `open_conversation` (call early in the run)."""
    goto = st.session_state.pop("goto", None)
    if goto:
        st.query_params["c"] = goto
    elif goto == "":
        st.query_params.pop("c", None)


def conversations(box, store: Store, cid: str | None, conversation: dict | None) -> None:
    with box:
        st.button(
            "New chat", key="new-chat", icon=":material/add:", on_click=open_conversation, args=(None,), width="stretch"
        )
        search = st.text_input(
            "Search titles",
            key="search",
            placeholder="Search titles",
            icon=":material/search:",
            label_visibility="collapsed",
        )
        found = store.list_conversations(search)
        with st.container(key="conversations", height=300 if len(found) > 8 else "content"):
            if not found:
                st.caption("No conversation has a title like that." if search.strip() else "No conversations yet.")
            for c in found:
                st.button(
                    plain(c["title"]),
                    key=f"conv-{c['id']}",
                    on_click=open_conversation,
                    args=(c["id"],),
                    type="primary" if c["id"] == cid else "secondary",
                    width="stretch",
                )
        if conversation:
            _this_conversation(store, conversation)


def _rename(store: Store, cid: str) -> None:
    try:
        store.rename_conversation(cid, st.session_state.get(f"title-{cid}", ""))
    except ConversationNotFound:  # deleted in another tab meanwhile: the run this triggers says so, in one line
        pass


@st.dialog("Delete this conversation?")
def _confirm_delete(store: Store, cid: str, title: str) -> None:
    st.write(f"“{plain(title)}” and all its messages will be deleted, for every tab and replica. This can't be undone.")
    with st.container(horizontal=True):
        if st.button("Delete", key="confirm-delete", type="primary", icon=":material/delete:"):
            try:
                store.delete_conversation(cid)
            except ConversationNotFound:  # already deleted in another tab: the outcome asked for
                pass
            open_conversation(None)
            st.rerun()
        if st.button("Cancel", key="cancel-delete"):
            st.rerun()


def _this_conversation(store: Store, conversation: dict) -> None:
    cid = conversation["id"]
    with st.expander("This conversation", icon=":material/chat:"):
        st.text_input("Title", value=conversation["title"], key=f"title-{cid}", on_change=_rename, args=(store, cid))
        slug = re.sub(r"[^A-Za-z0-9]+", "-", conversation["title"]).strip("-")[:40].lower() or "conversation"
        with st.container(horizontal=True):
            # Downloads don't rerun the page, so exporting never interrupts a streaming answer. The
            # files are made when clicked (Streamlit calls `data` then), from the database: the whole
            # conversation as it stands, not the part the page shows, at no cost to a page run.
            st.download_button(
                "Markdown",
                lambda: export_markdown(*_whole(store, conversation)),
                file_name=f"{slug}.md",
                mime="text/markdown",
                key="export-md",
                icon=":material/download:",
                on_click="ignore",
            )
            st.download_button(
                "JSON",
                lambda: export_json(*_whole(store, conversation)),
                file_name=f"{slug}.json",
                mime="application/json",
                key="export-json",
                icon=":material/download:",
                on_click="ignore",
            )
        if st.button("Delete…", key="delete", icon=":material/delete:"):
            _confirm_delete(store, cid, conversation["title"])


def _whole(store: Store, conversation: dict) -> tuple[dict, list[StoredMessage]]:
    cid = conversation["id"]
    return store.get_conversation(cid) or conversation, store.messages(cid)


def _model_field(provider: str, settings: Settings) -> str:
    default = settings.model if settings.provider == provider else ""
    allowed = users.allowed_models(settings)
    if allowed and not (provider == "local" and settings.model_path):
        # Only what RS_ALLOWED_MODELS lists, and nothing typed (the page refuses others anyway).
        return (
            st.selectbox(
                "Model",
                allowed,
                index=allowed.index(default) if default in allowed else 0,
                key=f"model-{provider}",
                on_change="ignore",
                help="The models this app allows (RS_ALLOWED_MODELS).",
            )
            or ""
        )
    if provider == "bedrock":
        try:
            from ..providers.bedrock_catalog import DEFAULT_MODEL, MODELS
        except ImportError:
            MODELS, DEFAULT_MODEL = (), ""
        ids = [m.id for m in MODELS]
        names = {m.id: f"{m.name} · {m.id}" for m in MODELS}
        start = default or DEFAULT_MODEL
        if start and start not in ids:
            ids.insert(0, start)
        return (
            st.selectbox(
                "Model",
                ids,
                index=ids.index(start) if start in ids else None,
                key="model-bedrock",
                format_func=lambda i: names.get(i, i),
                accept_new_options=True,
                on_change="ignore",
                placeholder="Pick or type a Bedrock model id",
                help="Any Bedrock model id or inference profile id; type one that is not listed.",
            )
            or ""
        )
    if provider == "openai":
        return (
            st.text_input(
                "Model",
                value=default,
                key="model-openai",
                on_change="ignore",
                placeholder="the server's model name",
                help=f"Served at {settings.openai_base_url}",
            )
            or ""
        )
    if provider == "local":
        if settings.model_path:
            st.caption(sanitize(f"Embedded model: {settings.model_path.name}"))
            return default
        from ..providers.local.models import bundled_choices  # the table only: no llama.cpp import

        labels = dict(bundled_choices())
        start = default if default in labels else settings.local_model
        return (
            st.selectbox(
                "Model",
                list(labels),
                index=list(labels).index(start) if start in labels else 0,
                key="model-local",
                format_func=lambda name: labels.get(name, name),
                on_change="ignore",
                help="Bundled with the app; RS_MODEL_PATH loads another GGUF file instead.",
            )
            or ""
        )
    return default


def _decode_stop(s: str) -> str:
    # Typed as text, so "\n" means a line break (the usual stop sequence for transcripts).
    return s.replace("\\n", "\n").replace("\\t", "\t")


def controls(settings: Settings) -> tuple[Settings, Params]:
    """Draw provider, model and parameters (defaults from the settings); returns what they say."""
    with st.sidebar:
        st.subheader("Model")
        names = users.allowed_providers(settings)  # all, unless RS_ALLOWED_PROVIDERS says fewer
        provider = st.selectbox(
            "Provider",
            names,
            index=names.index(settings.provider) if settings.provider in names else 0,
            key="provider",
            format_func=lambda name: PROVIDER_LABELS.get(name, name),
        )
        model = _model_field(provider, settings)
        if takes_effort(provider, model):  # only where the effort switches something (reasoning.takes_effort)
            efforts = ["", *EFFORTS]
            st.selectbox(
                "Think",
                efforts,
                index=efforts.index(settings.reasoning),
                key="reasoning",
                format_func=lambda e: e.capitalize() or "Model default",
                on_change="ignore",
                help="Ask the model to think first, with this effort (Claude: a thinking budget of "
                "1k / 4k / 16k tokens on top of Max tokens). Its thinking shows above the answer.",
            )
        with st.expander("Parameters", icon=":material/tune:"):
            st.text_input("System prompt", value=settings.system_prompt, key="system", on_change="ignore")
            st.number_input(
                "Temperature",
                0.0,
                2.0,
                value=settings.temperature,
                step=0.1,
                key="temperature",
                placeholder="model default",
                on_change="ignore",
            )
            st.number_input(
                "Top p",
                0.01,
                1.0,
                value=settings.top_p,
                step=0.05,
                key="top_p",
                placeholder="model default",
                on_change="ignore",
            )
            st.number_input(
                "Max tokens", 1, 32768, value=settings.max_tokens, step=64, key="max_tokens", on_change="ignore"
            )
            st.multiselect(
                "Stop sequences",
                [],
                key="stop-sequences",
                accept_new_options=True,
                on_change="ignore",
                placeholder="Type one, press Enter (\\n = new line)",
            )
    return chosen(settings)


def chosen(settings: Settings) -> tuple[Settings, Params]:
    """Provider, model and parameters as the sidebar's widgets hold them now.

    Read from the session rather than from the widgets' return values, because the part of the page
    that starts answers reruns on its own without drawing the sidebar (see `page`); the widgets
    keep their values in the session between runs.
    """
    ss = st.session_state
    provider = ss.get("provider", settings.provider)
    model = settings.model if settings.provider == provider else ""
    if f"model-{provider}" in ss:  # the provider's model field, when it has one (`_model_field`)
        model = ss[f"model-{provider}"] or ""
    stops = tuple(_decode_stop(s) for s in ss.get("stop-sequences", []) if s)
    effort = ss.get("reasoning", settings.reasoning) if takes_effort(provider, model) else ""
    params = Params(
        max_tokens=int(ss.get("max_tokens") or settings.max_tokens),
        stop=stops,
        temperature=ss.get("temperature", settings.temperature),
        top_p=ss.get("top_p", settings.top_p),
        system=ss.get("system", settings.system_prompt) or "",
        reasoning=effort or "",
    )
    return settings.model_copy(update={"provider": provider, "model": model}), params

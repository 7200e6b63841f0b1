"""The page's side of RS_ALLOWED_PROVIDERS / RS_ALLOWED_MODELS (AppTest, in-process): the sidebar offers only
what is allowed, and the page's provider path refuses anything else before building (or caching) it."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from response_streaming.config import Settings, get_settings
from response_streaming.errors import AccessDenied
from response_streaming.store import Store
from response_streaming.ui import resources


@pytest.fixture()
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("RS_PROVIDER", "replay")
    monkeypatch.setenv("RS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RS_ALLOWED_PROVIDERS", "replay,openai")
    monkeypatch.setenv("RS_ALLOWED_MODELS", "story-1,story-2")
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "streaming_app.py"), default_timeout=30)
    at.run()
    yield at
    st.cache_resource.clear()


def test_the_sidebar_offers_only_allowed_providers_and_models(app, tmp_path):
    assert not app.exception
    assert app.selectbox(key="provider").options == ["OpenAI-compatible server", "Replay (scripted, for tests)"]
    model = app.selectbox(key="model-replay")
    assert model.options == ["story-1", "story-2"] and model.value == "story-1"
    app.text_area[0].input("hello")
    app.button(key="go").click().run()
    assert not app.exception and not app.error
    history = Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    [conv] = history.list_conversations()
    assert history.get_conversation(conv["id"])["owner"] is None  # no sign-in configured: the single-user app


def test_the_provider_path_refuses_what_is_not_allowed_before_building_it(monkeypatch):
    built = []
    monkeypatch.setattr(resources, "make_provider", lambda s: built.append(s))
    st.cache_resource.clear()
    allowed = dict(allowed_providers="replay,openai", allowed_models="story-1")
    with pytest.raises(AccessDenied, match="bedrock provider is not allowed here"):
        resources.get_provider(Settings(provider="bedrock", model="story-1", **allowed))
    with pytest.raises(AccessDenied, match="'typed-by-hand' is not allowed here"):
        resources.get_provider(Settings(provider="openai", model="typed-by-hand", **allowed))
    assert built == []
    resources.get_provider(Settings(provider="openai", model="story-1", **allowed))
    assert len(built) == 1
    st.cache_resource.clear()


# The gate, per run (st.user seeded by AppTest; the real sign-in is in test_browser_auth.py) -----------------
ISSUER = "https://issuer.example"


def page_as(monkeypatch, tmp_path, user: dict, **env) -> AppTest:
    monkeypatch.setenv("RS_PROVIDER", "replay")
    monkeypatch.setenv("RS_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()  # the page reads them once per process, and AppTest runs it in this one
    at = AppTest.from_file(str(ROOT / "streaming_app.py"), default_timeout=30)
    at.user = user
    return at


def signed_in(sub: str, email: str) -> dict:
    return {"is_logged_in": True, "iss": ISSUER, "sub": sub, "email": email}


def test_a_visitor_gets_only_the_sign_in_page(monkeypatch, tmp_path):
    st.cache_resource.clear()
    at = page_as(monkeypatch, tmp_path, {"is_logged_in": False}).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert len(at.text_area) == 0 and len(at.selectbox) == 0 and len(at.sidebar) == 0


def test_users_are_kept_apart_and_a_foreign_email_is_refused(monkeypatch, tmp_path):
    st.cache_resource.clear()
    alice = page_as(monkeypatch, tmp_path, signed_in("alice", "alice@team.example")).run()
    assert "alice@team.example" in [c.value for c in alice.sidebar.caption]
    alice.text_area[0].input("alice's plan")
    alice.button(key="go").click().run()
    assert not alice.exception
    history = Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    [conv] = history.list_conversations()
    assert history.get_conversation(conv["id"])["owner"] == f"{ISSUER}#alice"

    bob = page_as(monkeypatch, tmp_path, signed_in("bob", "bob@team.example"))
    bob.query_params["c"] = conv["id"]
    bob.run()
    assert not bob.exception
    assert any("belongs to another user" in i.value for i in bob.info)
    assert not any("alice's plan" in m.value for m in bob.markdown)
    assert "c" not in bob.query_params
    assert not [b for b in bob.button if b.key and b.key.startswith("conv-")]

    mallory = page_as(
        monkeypatch, tmp_path, signed_in("m", "mallory@evil.example"), RS_ALLOWED_EMAIL_DOMAINS="team.example"
    ).run()
    assert "mallory@evil.example is not allowed to use this app" in mallory.error[0].value
    assert [b.label for b in mallory.button] == ["Sign out"] and len(mallory.text_area) == 0
    st.cache_resource.clear()


def test_renaming_a_conversation_deleted_meanwhile_says_so_in_one_line(monkeypatch, tmp_path):
    st.cache_resource.clear()
    at = page_as(monkeypatch, tmp_path, signed_in("alice", "alice@team.example")).run()
    at.text_area[0].input("soon gone")
    at.button(key="go").click().run()
    history = Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    [conv] = history.list_conversations()
    at.run()  # the page as drawn with the conversation open (its title field)
    history.delete_conversation(conv["id"])  # in another tab
    at.text_input(key=f"title-{conv['id']}").input("new title").run()
    assert not at.exception
    assert any("doesn't exist" in i.value for i in at.info)
    assert history.list_conversations() == []
    st.cache_resource.clear()

"""The page's side of RS_ALLOWED_PROVIDERS / RS_ALLOWED_MODELS (AppTest, in-process): the sidebar offers only
what is allowed, and the page's provider path refuses anything else before building (or caching) it."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from response_streaming.config import Settings
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

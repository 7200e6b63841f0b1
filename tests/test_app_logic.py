"""Page logic with Streamlit's AppTest (in-process), on the scripted provider."""
from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from response_streaming.store import Store


@pytest.fixture()
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("RS_PROVIDER", "replay")
    monkeypatch.setenv("RS_DATA_DIR", str(tmp_path))
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "streaming_app.py"), default_timeout=30)
    at.run()
    yield at
    st.cache_resource.clear()


def test_page_has_the_labs_elements(app):
    assert app.title[0].value == "Response Streaming"
    assert len(app.text_area) == 1
    go = app.button[0]
    assert go.label == "Go" and go.proto.type == "primary"


def test_empty_input_warns_and_calls_no_model(app, tmp_path):
    app.text_area[0].input("   \n ")
    app.button[0].click().run()
    assert "empty" in app.warning[0].value
    assert Store(f"sqlite:///{tmp_path / 'history.sqlite3'}").list_conversations() == []


def test_go_streams_an_answer_and_stores_both_messages(app, tmp_path):
    app.text_area[0].input("Write a story about two cats that go on an adventure:")
    app.button[0].click().run()
    assert not app.exception
    store = Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    [conv] = store.list_conversations()
    msgs = store.messages(conv["id"])
    assert [(m.role, m.status) for m in msgs] == [("user", "complete"), ("assistant", "complete")]
    assert "two cats" in msgs[1].content
    assert app.query_params["c"] == conv["id"]
    assert any("two cats" in md.value for md in app.markdown)
    assert app.text_area[0].value == ""  # the box is cleared for the next prompt

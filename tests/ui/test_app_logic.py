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


# The chat product's page logic (issue 5) ---------------------------------------------------------
def history_in(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'history.sqlite3'}")


def use_provider(monkeypatch, factory):
    """Make the page build its provider with `factory(settings)` (a scripted fault, a failing setup)."""
    import response_streaming.ui.resources as resources

    monkeypatch.setattr(resources, "make_provider", factory)
    st.cache_resource.clear()


def test_sidebar_parameters_reach_the_model_and_are_stored(app, tmp_path):
    app.text_input(key="system").input("Answer briefly.")
    app.number_input(key="temperature").set_value(0.4)
    app.number_input(key="max_tokens").set_value(5)
    app.text_area[0].input("Tell me a story")
    app.button(key="go").click().run()
    assert not app.exception
    [conv] = history_in(tmp_path).list_conversations()
    answer = history_in(tmp_path).messages(conv["id"])[-1]
    assert answer.meta["params"] == {
        "max_tokens": 5,
        "temperature": 0.4,
        "top_p": None,
        "stop": [],
        "system": "Answer briefly.",
        "reasoning": "",
    }
    assert answer.meta["metrics"]["output_tokens"] == 5 and answer.meta["metrics"]["stop_reason"] == "max_tokens"
    assert answer.meta["provider"] == "replay"
    assert app.button(key="continue").label == "Continue"  # cut at max tokens: it can go on


def test_an_interrupted_answer_shows_its_partial_text_what_happened_and_retry(app, tmp_path, monkeypatch):
    from response_streaming.providers.replay import ReplayProvider

    use_provider(monkeypatch, lambda s: ReplayProvider(text="The first words and then more", fail_after=3))
    app.text_area[0].input("Tell me")
    app.button(key="go").click().run()
    assert not app.exception
    assert any("The first words" in md.value for md in app.markdown)
    assert "broke off" in app.error[0].value
    retry = app.button(key="regenerate")
    assert retry.label == "Retry"

    use_provider(monkeypatch, lambda s: ReplayProvider(text="A whole answer."))
    retry.click().run()
    [conv] = history_in(tmp_path).list_conversations()
    msgs = history_in(tmp_path).messages(conv["id"])
    assert [(m.role, m.status) for m in msgs] == [("user", "complete"), ("assistant", "complete")]
    assert msgs[-1].content == "A whole answer." and not app.error


def test_a_misconfigured_provider_says_what_to_fix_and_changes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("RS_PROVIDER", "local")
    monkeypatch.setenv("RS_MODEL_PATH", str(tmp_path / "missing-model.gguf"))
    monkeypatch.setenv("RS_DATA_DIR", str(tmp_path))
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "streaming_app.py"), default_timeout=30)
    at.run()
    at.text_area[0].input("Hello")
    at.button(key="go").click().run()
    assert not at.exception
    assert "missing-model.gguf" in at.error[0].value
    assert history_in(tmp_path).list_conversations() == []  # nothing stored for a request that could not start


@pytest.mark.parametrize(
    "failure, says",
    [
        (
            ModuleNotFoundError(
                "No module named 'response_streaming.providers.nothing'", name="response_streaming.providers.nothing"
            ),
            "not part of this version",
        ),
        (ModuleNotFoundError("No module named 'boto3'", name="boto3"), "pip install 'response-streaming[all]'"),
        (RuntimeError("secret token abc123 rejected"), "could not start (RuntimeError)"),
    ],
)
def test_a_provider_that_cannot_start_shows_one_safe_line(app, monkeypatch, failure, says):
    def broken(settings):
        raise failure

    use_provider(monkeypatch, broken)
    app.text_area[0].input("Hello")
    app.button(key="go").click().run()
    assert not app.exception
    message = app.error[0].value
    assert says in message
    assert "abc123" not in message and "Traceback" not in message


# Long conversations (issue 14) --------------------------------------------------------------------
def seeded(tmp_path, turns: int) -> tuple[Store, str]:
    """A conversation of `turns` prompts and answers, each message with a marker word `m<index>x`."""
    store = history_in(tmp_path)
    cid = store.create_conversation("A long chat")
    for i in range(turns):
        store.add_message(cid, "user", f"Question m{2 * i:03d}x: tell me **more**.")
        store.add_message(
            cid,
            "assistant",
            f"Answer m{2 * i + 1:03d}x with `code` and [a link](https://example.com).",
            meta={"provider": "replay", "model": "replay", "metrics": {"output_tokens": 9}},
        )
    return store, cid


def chat_texts(at) -> list[str]:
    return [md.value for md in at.markdown if "m0" in md.value or "m1" in md.value]


def test_a_long_conversation_shows_its_latest_messages_and_loads_earlier_ones_on_request(app, tmp_path):
    _, cid = seeded(tmp_path, 50)
    app.query_params["c"] = cid
    app.run()
    shown = chat_texts(app)
    assert len(shown) == 40 and "m060x" in shown[0] and "m099x" in shown[-1]
    assert any("60 earlier messages not shown" in c.value for c in app.caption)
    app.button(key="earlier").click().run()
    shown = chat_texts(app)
    assert len(shown) == 80 and "m020x" in shown[0]
    app.button(key="earlier").click().run()
    assert len(chat_texts(app)) == 100
    assert not [b for b in app.button if b.key == "earlier"]  # nothing more to load


def test_finished_messages_are_sanitised_once_while_unchanged(app, tmp_path):
    from response_streaming.ui.cache import render_cache

    store, cid = seeded(tmp_path, 5)
    app.query_params["c"] = cid
    app.run()
    cache = render_cache()
    assert cache.misses == 10  # every message once
    app.run()
    app.run()
    assert cache.misses == 10  # drawn again from the cache
    last = store.messages(cid)[-1]
    store.update_message(last.id, last.content + " And more.", "complete", "", last.meta)  # Continue grew it
    app.run()
    assert cache.misses == 11
    assert any("And more." in md.value for md in app.markdown)


def test_the_local_model_picked_in_the_sidebar_reaches_the_provider(app, monkeypatch):
    from response_streaming.providers.replay import ReplayProvider

    asked = []
    use_provider(monkeypatch, lambda s: asked.append((s.provider, s.model)) or ReplayProvider(text="Hi."))
    app.selectbox(key="provider").set_value("local").run()
    app.selectbox(key="model-local").set_value("gemma3").run()
    app.text_area[0].input("Hello")
    app.button(key="go").click().run()
    assert not app.exception
    assert asked == [("local", "gemma3")]


def test_the_think_control_shows_where_it_switches_something_and_reaches_the_provider(app, monkeypatch):
    from response_streaming.providers.replay import ReplayProvider

    class Asked(ReplayProvider):
        def stream(self, messages, params):
            asked.append(params.reasoning)
            return super().stream(messages, params)

    asked: list[str] = []
    use_provider(monkeypatch, lambda s: Asked(text="Hi."))
    assert not [s for s in app.selectbox if s.key == "reasoning"]  # the replay provider has no effort to set
    app.selectbox(key="provider").set_value("openai").run()
    app.selectbox(key="reasoning").set_value("high").run()
    app.text_area[0].input("Hello")
    app.button(key="go").click().run()
    assert not app.exception
    assert asked == ["high"]

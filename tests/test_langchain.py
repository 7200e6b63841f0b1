"""The lab's library face: a LangChain callback handler receives every token; memory across calls."""

from __future__ import annotations

import importlib

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from response_streaming.errors import StreamInterrupted
from response_streaming.langchain_model import chat_model
from response_streaming.providers.replay import ReplayProvider


class Collect(BaseCallbackHandler):
    def __init__(self):
        self.tokens: list[str] = []

    def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


@pytest.fixture()
def lib(monkeypatch, local_settings):
    monkeypatch.setenv("RS_N_CTX", str(local_settings.n_ctx))
    monkeypatch.setenv("RS_MAX_TOKENS", "24")
    monkeypatch.setenv("RS_TEMPERATURE", "0")
    import streaming_lib

    importlib.reload(streaming_lib)
    yield streaming_lib
    streaming_lib.reset_memory()


def test_every_token_reaches_the_callback_and_joins_to_the_answer(lib):
    cb = Collect()
    answer = lib.get_streaming_response("Write a story about two cats that go on an adventure:", cb)
    real = [t for t in cb.tokens if t]
    assert len(real) >= 2 and answer.strip()
    assert "".join(cb.tokens) == answer


def test_get_llm_is_a_langchain_chat_model_with_the_callback(lib):
    from langchain_core.language_models import BaseChatModel

    cb = Collect()
    llm = lib.get_llm(cb)
    assert isinstance(llm, BaseChatModel) and cb in llm.callbacks
    chunks = [c.text for c in llm.stream("Say hello:")]
    assert "".join(chunks).strip()


def test_conversation_is_remembered_across_calls(lib, monkeypatch):
    seen = []

    class Spy(ReplayProvider):
        def stream(self, messages, params):
            seen.append([(m.role, m.content) for m in messages])
            return super().stream(messages, params)

    monkeypatch.setattr(lib, "make_provider", lambda settings: Spy(text="Nice to meet you, Ada."))
    lib.get_streaming_response("My name is Ada.", Collect())
    lib.get_streaming_response("What is my name?", Collect())
    assert seen[1] == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


def test_memory_on_the_real_model(lib):
    first = lib.get_streaming_response("My name is Ada.", Collect())
    lib.get_streaming_response("What is my name?", Collect())
    assert [m.content for m in lib._memory] == ["My name is Ada.", first, "What is my name?", lib._memory[3].content]


def test_stream_failure_raises_our_error_after_delivering_the_partial():
    cb = Collect()
    llm = chat_model(ReplayProvider(text="a b c d", fail_after=2), callbacks=[cb])
    with pytest.raises(StreamInterrupted):
        llm.invoke("hi")
    assert "".join(cb.tokens) == "a b"


def test_reasoning_is_a_standard_reasoning_block_and_callbacks_still_get_answer_strings():
    from response_streaming.events import ReasoningDelta

    thinking = (ReasoningDelta("Two and"), ReasoningDelta(" two."))
    collector = Collect()
    llm = chat_model(ReplayProvider(text="It is 4.", thinking=thinking), callbacks=[collector])
    message = llm.invoke("2+2?")
    assert message.content == "It is 4."  # the answer alone
    assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "Two and two."}
    assert all(isinstance(t, str) for t in collector.tokens)
    assert "".join(collector.tokens) == "It is 4."

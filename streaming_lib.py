"""The lab's library face, kept: `get_llm(streaming_callback)` and `get_streaming_response(prompt, streaming_callback)`.

What changed behind it: the retired `cohere.command-text-v14` and the deprecated LangChain classes are
gone. `get_llm` returns a LangChain chat model over whichever provider the settings name (the
embedded model by default; `RS_PROVIDER=bedrock` or `openai` for remote ones), and the conversation
is remembered across calls in this process, which the lab intended but lost by building a new
chain on every call.
"""
from __future__ import annotations

import threading

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from response_streaming.config import get_settings
from response_streaming.langchain_model import ChatResponseStreaming, chat_model
from response_streaming.providers import make_provider

_memory: list[BaseMessage] = []
_memory_lock = threading.Lock()


def get_llm(streaming_callback) -> ChatResponseStreaming:
    settings = get_settings()
    return chat_model(make_provider(settings), settings.default_params(), callbacks=[streaming_callback])


def get_streaming_response(prompt, streaming_callback) -> str:
    """Stream the answer to `prompt` through `streaming_callback` and return its full text."""
    with _memory_lock:  # one turn at a time keeps the remembered conversation in order
        messages = [*_memory, HumanMessage(prompt)]
        answer = get_llm(streaming_callback).invoke(messages)
        _memory.extend([HumanMessage(prompt), AIMessage(answer.text)])
        return answer.text


def reset_memory() -> None:
    with _memory_lock:
        _memory.clear()

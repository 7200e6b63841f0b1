"""A LangChain chat model over our providers, so LangChain callbacks and chains get every token."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from .events import Message, Params, Provider
from .recorder import Recorder


def to_messages(messages: Sequence[BaseMessage]) -> tuple[list[Message], str]:
    """LangChain messages → our messages and a system prompt (system messages are joined)."""
    system, out = [], []
    for m in messages:
        text = m.content if isinstance(m.content, str) else m.text
        if isinstance(m, SystemMessage):
            system.append(text)
        else:
            out.append(Message("assistant" if isinstance(m, AIMessage) else "user", text))
    return out, "\n\n".join(system)


class StreamingChatModel(BaseChatModel):
    """`BaseChatModel` whose `_stream` is a provider's event stream.

    LangChain itself calls `on_llm_new_token` for each chunk we yield, so handlers receive every
    token, in order, and the tokens joined are the returned text.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    provider: Any
    params: Params = Params()
    streaming: bool = True

    @property
    def _llm_type(self) -> str:
        return f"response-streaming-{self.provider.name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"provider": self.provider.name, "model": self.provider.model}

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        msgs, system = to_messages(messages)
        params = self.params
        if stop or system:
            params = replace(params, stop=params.stop + tuple(stop or ()), system=system or params.system)
        rec = Recorder(self.provider.stream(msgs, params))
        for piece in rec:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        if rec.exception is not None:
            raise rec.exception
        metadata = {"status": rec.status, "model": self.provider.model, **rec.metrics.as_dict()}
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=metadata))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        text = "".join(c.text for c in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def chat_model(provider: Provider, params: Params | None = None, callbacks: list | None = None) -> StreamingChatModel:
    return StreamingChatModel(provider=provider, params=params or Params(), streaming=True, callbacks=callbacks)

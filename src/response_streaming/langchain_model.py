"""A LangChain chat model over our providers, so LangChain callbacks and chains get every token.

It follows LangChain's conventions for a chat model: a `Chat...` class name, the standard init
parameters (`temperature`, `max_tokens`, `stop`, plus our `top_p`), token counts in
`usage_metadata` on the message (and on the last streamed chunk), `model_name` in
`response_metadata`, and LangSmith's `ls_*` parameters. `langchain-tests`' standard suites run on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
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


def usage_of(rec: Recorder) -> UsageMetadata | None:
    """LangChain's token counts from the recorder's (None when the provider reported no input count)."""
    m = rec.metrics
    if m.input_tokens is None:
        return None
    return UsageMetadata(
        input_tokens=m.input_tokens, output_tokens=m.output_tokens, total_tokens=m.input_tokens + m.output_tokens
    )


class ChatResponseStreaming(BaseChatModel):
    """`BaseChatModel` whose `_stream` is a provider's event stream.

    LangChain itself calls `on_llm_new_token` for each chunk we yield, so handlers receive every
    token, in order, and the tokens joined are the returned text. A model's thinking comes as chunks
    with empty content and `reasoning_content`, i.e. a standard reasoning block first in
    `content_blocks`. `params` holds the defaults; the standard fields below override them when set.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    provider: Any  # an events.Provider (a Protocol, so pydantic can't check it)
    params: Params = Params()
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    streaming: bool = True

    @property
    def _llm_type(self) -> str:
        return f"response-streaming-{self.provider.name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"provider": self.provider.name, "model": self.provider.model}

    def _params(self, stop: list[str] | None = None, system: str = "") -> Params:
        p = self.params
        return replace(
            p,
            max_tokens=self.max_tokens if self.max_tokens is not None else p.max_tokens,
            temperature=self.temperature if self.temperature is not None else p.temperature,
            top_p=self.top_p if self.top_p is not None else p.top_p,
            stop=p.stop + tuple(self.stop or ()) + tuple(stop or ()),
            system=system or p.system,
        )

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = self._params(stop)
        ls = LangSmithParams(
            ls_provider=self.provider.name,
            ls_model_name=self.provider.model,
            ls_model_type="chat",
            ls_max_tokens=params.max_tokens,
        )
        if params.temperature is not None:
            ls["ls_temperature"] = params.temperature
        if params.stop:
            ls["ls_stop"] = list(params.stop)
        return ls

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        msgs, system = to_messages(messages)
        rec = Recorder(self.provider.stream(msgs, self._params(stop, system)))
        for piece in rec.stream():
            if isinstance(piece, str):
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
            elif piece.text:
                # Thinking rides in `additional_kwargs["reasoning_content"]` (as Ollama's and DeepSeek's chat
                # models carry it): LangChain joins it across chunks and shows it as the standard
                # `{"type": "reasoning"}` block of `content_blocks`, while `content` (what callbacks get as
                # the token) stays a string, empty for these chunks.
                yield ChatGenerationChunk(
                    message=AIMessageChunk(content="", additional_kwargs={"reasoning_content": piece.text})
                )
        if rec.exception is not None:
            raise rec.exception
        metadata = {
            "status": rec.status,
            "model_name": self.provider.model,
            "model_provider": self.provider.name,
            **rec.metrics.as_dict(),
        }
        last = AIMessageChunk(
            content="", response_metadata=metadata, usage_metadata=usage_of(rec), chunk_position="last"
        )
        yield ChatGenerationChunk(message=last)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))


StreamingChatModel = ChatResponseStreaming  # the name it had first


def chat_model(
    provider: Provider, params: Params | None = None, callbacks: list | None = None
) -> ChatResponseStreaming:
    return ChatResponseStreaming(provider=provider, params=params or Params(), streaming=True, callbacks=callbacks)

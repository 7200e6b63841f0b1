"""OpenAI-compatible endpoints: `POST /v1/chat/completions` (streamed or whole), `GET /v1/models`.

`parse_chat_request` is the pure request-side translation (a dict in, our messages and params out,
or `BadRequest` with a message naming the field); the rest is thin glue. The served model is the
configured provider's: any `model` name a client sends is accepted, so apps work unchanged, and
responses name the model that really answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import BadRequest, ResponseStreamingError
from ..events import Message, Params, ReasoningDelta
from ..recorder import Recorder
from ..wire import openai as openai_wire
from ..wire.bedrock.common import effort_asked
from .generation import Generation, GenerationResponse, failure
from .http import read_json
from .validate import (
    DEFAULT_LIMITS,
    Limits,
    check_conversation,
    make_params,
    message_list,
    number,
    require_object,
    stop_list,
)


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    params: Params
    stream: bool
    include_usage: bool
    model: str


def _text_of(content, where: str) -> str:
    """`content` is a string or a list of parts; only text parts can be served."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{where}.content[{i}]: only text parts are supported, not {kind!r}.")
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{where}.content[{i}].text must be a string.")
            texts.append(part["text"])
        return "".join(texts)
    raise BadRequest(f"{where}.content must be a string or a list of text parts.")


def parse_chat_request(body, default: Params, limits: Limits = DEFAULT_LIMITS) -> ChatRequest:
    """An OpenAI chat-completions body -> our request. Unknown fields are ignored, as most servers do."""
    body = require_object(body)
    raw = message_list(body.get("messages"), "'messages'", limits)
    system, messages = [], []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object with 'role' and 'content'.")
        role, text = m.get("role"), _text_of(m.get("content"), where)
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            messages.append(Message(role, text))
        else:
            raise BadRequest(f"{where}.role {role!r} is not supported: use system, developer, user or assistant.")
    if body.get("tools") or body.get("functions"):
        raise BadRequest("Tools and function calling are not supported by this server.")
    n = number(body.get("n"), "'n'", 1, 128, integer=True)
    if n not in (None, 1):
        raise BadRequest("'n' must be 1: this server returns one choice.")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise BadRequest("'stream' must be true or false.")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string.")
    params = make_params(
        default,
        limits,
        max_tokens=body.get(key),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=stop_list(body.get("stop"), "'stop'", limits, allow_string=True),
        system="\n\n".join(system),
        reasoning=effort_asked(body.get("reasoning_effort"), "'reasoning_effort'"),
        names={"max_tokens": f"'{key}'", "temperature": "'temperature'", "top_p": "'top_p'"},
    )
    messages = check_conversation(messages, params, limits)
    return ChatRequest(messages, params, bool(stream), bool(options.get("include_usage")), model or "")


def error_response(err: ResponseStreamingError | Exception, code: str | None = None) -> JSONResponse:
    """Our error in OpenAI's shape, with its HTTP status (500 and a safe line for anything else)."""
    if isinstance(err, ResponseStreamingError):
        status, message = err.status, str(err)
    else:
        status, message = 500, "Internal server error; the details are in the server log."
    return JSONResponse(openai_wire.error_body(message, status, code), status_code=status)


class ChatWire:
    """Frames a generation as OpenAI chat completion chunks (SSE) or one `chat.completion`."""

    media_type = "text/event-stream; charset=utf-8"
    headers: Mapping[str, str] = {}

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.chunks = openai_wire.ChunkEncoder(model, include_usage)

    def error_response(self, err: ResponseStreamingError) -> Response:
        return error_response(err)

    def start(self) -> bytes:
        return self.chunks.start()

    def piece(self, text: str) -> bytes:
        return self.chunks.delta(text)

    def reasoning(self, thought: ReasoningDelta) -> bytes:
        # Only the readable text fits this API: a signature or redacted thinking has no field here.
        return self.chunks.reasoning(thought.text)

    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes:
        if err is not None:
            return self.chunks.error(str(err), err.status, type(err).__name__)
        m = rec.metrics
        return self.chunks.finish(m.stop_reason, m.input_tokens, m.output_tokens)

    def whole(self, rec: Recorder) -> Response:
        err = failure(rec)
        if err is not None:
            return error_response(err)
        m = rec.metrics
        return JSONResponse(
            openai_wire.completion(
                self.model,
                rec.text,
                m.stop_reason,
                m.input_tokens,
                m.output_tokens,
                cid=self.chunks.id,
                created=self.chunks.created,
                reasoning=rec.reasoning_text,
            )
        )


def router(state) -> APIRouter:
    """`state` holds `provider` and `settings` (the app's)."""
    api = APIRouter()

    @api.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(openai_wire.models_list([state.provider.model]))

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = parse_chat_request(await read_json(request), state.settings.default_params(), state.limits)
        gen = Generation(state.provider, req.messages, req.params, state.generations)
        wire = ChatWire(state.provider.model, req.include_usage)
        return GenerationResponse(gen, wire, req.stream, {"api": "openai", "path": request.url.path})

    return api

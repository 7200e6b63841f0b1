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
from ..events import Message, Params
from ..recorder import Recorder
from ..wire import sse
from .generation import Generation, GenerationResponse, failure
from .http import read_json

MAX_STOPS = 4  # OpenAI's own limit


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


def _number(body: dict, key: str, lo: float, hi: float, integer: bool = False):
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise BadRequest(f"'{key}' must be {'an integer' if integer else 'a number'}.")
    if not lo <= value <= hi:
        raise BadRequest(f"'{key}' must be between {lo:g} and {hi:g}, not {value}.")
    return value


def parse_chat_request(body, default: Params) -> ChatRequest:
    """An OpenAI chat-completions body -> our request. Unknown fields are ignored, as most servers do."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects.")
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
    if not messages or messages[-1].role != "user" or not messages[-1].content.strip():
        raise BadRequest("The last message must be a non-empty 'user' message.")
    if body.get("tools") or body.get("functions"):
        raise BadRequest("Tools and function calling are not supported by this server.")
    n = _number(body, "n", 1, 128, integer=True)
    if n not in (None, 1):
        raise BadRequest("'n' must be 1: this server returns one choice.")
    max_tokens = _number(body, "max_completion_tokens", 1, 1 << 20, integer=True) or \
        _number(body, "max_tokens", 1, 1 << 20, integer=True) or default.max_tokens
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > MAX_STOPS:
        raise BadRequest(f"'stop' must be a string or a list of at most {MAX_STOPS} strings.")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise BadRequest("'stream' must be true or false.")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string.")
    params = Params(max_tokens=max_tokens,
                    temperature=default.temperature if temperature is None else float(temperature),
                    top_p=default.top_p if top_p is None else float(top_p),
                    stop=tuple(s for s in stops if s), system="\n\n".join(system) if system else default.system)
    return ChatRequest(messages, params, bool(stream), bool(options.get("include_usage")), model or "")


def error_response(err: ResponseStreamingError | Exception, code: str | None = None) -> JSONResponse:
    """Our error in OpenAI's shape, with its HTTP status (500 and a safe line for anything else)."""
    if isinstance(err, ResponseStreamingError):
        status, message = err.status, str(err)
    else:
        status, message = 500, "Internal server error; the details are in the server log."
    return JSONResponse(sse.error_body(message, status, code), status_code=status)


class ChatWire:
    """Frames a generation as OpenAI chat completion chunks (SSE) or one `chat.completion`."""

    media_type = "text/event-stream; charset=utf-8"
    headers: Mapping[str, str] = {}

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.chunks = sse.ChunkEncoder(model, include_usage)

    def error_response(self, err: ResponseStreamingError) -> Response:
        return error_response(err)

    def start(self) -> bytes:
        return self.chunks.start()

    def piece(self, text: str) -> bytes:
        return self.chunks.delta(text)

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
        return JSONResponse(sse.completion(self.model, rec.text, m.stop_reason, m.input_tokens, m.output_tokens,
                                           cid=self.chunks.id, created=self.chunks.created))


def router(state) -> APIRouter:
    """`state` holds `provider` and `settings` (the app's)."""
    api = APIRouter()

    @api.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(sse.models_list([state.provider.model]))

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = parse_chat_request(await read_json(request), state.settings.default_params())
        gen = Generation(state.provider, req.messages, req.params, state.generations)
        wire = ChatWire(state.provider.model, req.include_usage)
        return GenerationResponse(gen, wire, req.stream, {"api": "openai", "path": request.url.path})

    return api


"""Our own plain SSE endpoint: `POST /v1/stream` streams our events as they are, nothing to emulate.

Request: `{"messages": [{"role": "user"|"assistant", "content": "..."}], "params": {"max_tokens",
"temperature", "top_p", "stop": [...], "system"}}` (`params` and each of its fields optional).

Response (`text/event-stream`), one SSE event per line of our contract:
    event: delta    data: {"text": "..."}                            (any number)
    event: usage    data: {"input_tokens": N, "output_tokens": N}
    event: finish   data: {"reason": "end_turn"|"max_tokens"|..., "metrics": {...}}
or, if the stream breaks after it started:
    event: error    data: {"message": "...", "type": "StreamInterrupted", "status": 502}
Errors before the first piece are plain JSON with their HTTP status: `{"error": {"message", "type"}}`.
"""
from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import BadRequest, ResponseStreamingError
from ..events import Message, Params
from ..recorder import Recorder
from ..wire.sse import sse_json
from .generation import INTERNAL, Generation, GenerationResponse
from .http import read_json

PARAM_TYPES = {"max_tokens": int, "temperature": (int, float), "top_p": (int, float), "system": str}


def parse_stream_request(body, default: Params) -> tuple[list[Message], Params]:
    """Pure: our request body -> (messages, params), or `BadRequest` naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects.")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            raise BadRequest(f"messages[{i}] must be {{\"role\": \"user\" or \"assistant\", \"content\": a string}}.")
        messages.append(Message(m["role"], m["content"]))
    if messages[-1].role != "user" or not messages[-1].content.strip():
        raise BadRequest("The last message must be a non-empty 'user' message.")
    given = body.get("params") or {}
    if not isinstance(given, dict):
        raise BadRequest("'params' must be an object.")
    values = {}
    for key, value in given.items():
        if key == "stop":
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise BadRequest("params.stop must be a list of strings.")
            values["stop"] = tuple(s for s in value if s)
        elif key in PARAM_TYPES:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, PARAM_TYPES[key]):
                raise BadRequest(f"params.{key} has the wrong type.")
            values[key] = value
        else:
            raise BadRequest(f"params.{key} is unknown: use max_tokens, temperature, top_p, stop or system.")
    if values.get("max_tokens", 1) < 1:
        raise BadRequest("params.max_tokens must be at least 1.")
    if not 0 <= values.get("temperature", 0) <= 2:
        raise BadRequest("params.temperature must be between 0 and 2.")
    if not 0 < values.get("top_p", 1) <= 1:
        raise BadRequest("params.top_p must be above 0 and at most 1.")
    merged = {"max_tokens": default.max_tokens, "temperature": default.temperature, "top_p": default.top_p,
              "stop": default.stop, "system": default.system, **values}
    return messages, Params(**merged)


def error_response(err: BaseException) -> JSONResponse:
    if isinstance(err, ResponseStreamingError):
        return JSONResponse({"error": {"message": str(err), "type": type(err).__name__}}, status_code=err.status)
    return JSONResponse({"error": {"message": INTERNAL, "type": "InternalError"}}, status_code=500)


class EventsWire:
    media_type = "text/event-stream; charset=utf-8"
    headers: Mapping[str, str] = {}

    def error_response(self, err: ResponseStreamingError) -> Response:
        return error_response(err)

    def start(self) -> bytes:
        return b""

    def piece(self, text: str) -> bytes:
        return sse_json({"text": text}, "delta")

    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes:
        if err is not None:
            return sse_json({"message": str(err), "type": type(err).__name__, "status": err.status}, "error")
        m = rec.metrics
        usage = sse_json({"input_tokens": m.input_tokens, "output_tokens": m.output_tokens}, "usage")
        return usage + sse_json({"reason": m.stop_reason, "metrics": m.as_dict()}, "finish")

    def whole(self, rec: Recorder) -> Response:  # this endpoint always streams
        raise NotImplementedError


def router(state) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/stream")
    async def stream(request: Request) -> Response:
        messages, params = parse_stream_request(await read_json(request), state.settings.default_params())
        gen = Generation(state.provider, messages, params, state.generations)
        return GenerationResponse(gen, EventsWire(), True, {"api": "events", "path": request.url.path})

    return api

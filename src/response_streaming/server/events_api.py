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
from .validate import DEFAULT_LIMITS, Limits, check_conversation, make_params, message_list, require_object, stop_list


def parse_stream_request(body, default: Params, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Message], Params]:
    """Pure: our request body -> (messages, params), or `BadRequest` naming the field."""
    body = require_object(body)
    messages = []
    for i, m in enumerate(message_list(body.get("messages"), "'messages'", limits)):
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)):
            raise BadRequest(f"messages[{i}] must be {{\"role\": \"user\" or \"assistant\", \"content\": a string}}.")
        messages.append(Message(m["role"], m["content"]))
    given = require_object(body.get("params") or {}, "'params'")
    unknown = sorted(set(given) - {"max_tokens", "temperature", "top_p", "stop", "system"})
    if unknown:
        raise BadRequest(f"params.{unknown[0]} is unknown: use max_tokens, temperature, top_p, stop or system.")
    system = given.get("system")
    if system is not None and not isinstance(system, str):
        raise BadRequest("params.system must be a string.")
    params = make_params(default, limits, max_tokens=given.get("max_tokens"), temperature=given.get("temperature"),
                         top_p=given.get("top_p"),
                         stop=stop_list(given["stop"], "params.stop", limits) if "stop" in given else default.stop,
                         system=system or "", names={k: f"params.{k}" for k in ("max_tokens", "temperature", "top_p")})
    return check_conversation(messages, params, limits), params


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
        messages, params = parse_stream_request(await read_json(request), state.settings.default_params(), state.limits)
        gen = Generation(state.provider, messages, params, state.generations)
        return GenerationResponse(gen, EventsWire(), True, {"api": "events", "path": request.url.path})

    return api

"""Our own plain SSE endpoint: `POST /v1/stream` streams our events as they are, nothing to emulate.

Request: `{"messages": [{"role": "user"|"assistant", "content": "..."}], "params": {"max_tokens",
"temperature", "top_p", "stop": [...], "system", "reasoning": "low"|"medium"|"high"}}` (`params` and
each of its fields optional).

The answer is a durable generation: it runs on its own, its events are kept in the generation log,
and a client that disconnects stops nothing. The response carries `X-Generation-Id`; every event
has an `id:` line, its sequence number in the log (1, 2, 3... without gaps):
    id: 1  event: reasoning data: {"text": "...", "signature"?: "...", "redacted"?: "<base64>"}  (thinking, first)
    id: N  event: delta    data: {"text": "..."}                            (any number; pieces that
                                                                             came together share one)
    id: N  event: usage    data: {"input_tokens": N, "output_tokens": N}
    id: N  event: finish   data: {"reason": "end_turn"|"max_tokens"|..., "status": "complete"|"stopped",
                                  "metrics": {...}}
or, if the answer broke after it started (or its process died: status "interrupted"):
    id: N  event: error    data: {"message": "...", "type": "StreamInterrupted", "status": 502,
                                  "generation_status": "error"|"incomplete"|"interrupted"}
Errors before the first piece are plain JSON with their HTTP status: `{"error": {"message", "type"}}`.

`GET /v1/stream/{id}` re-attaches: the events after `Last-Event-ID` (or `?after=N`), then live, ending
with `finish` or `error`; an ended generation replays while its log is kept (RS_GENERATION_RETENTION);
an unknown or expired id is a 404. `POST /v1/stream/{id}/stop` stops it, wherever it runs. With API
keys, only the key that started a generation may attach to it or stop it.
"""

from __future__ import annotations

import hashlib

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import BadRequest, GenerationNotFound, ResponseStreamingError
from ..events import Message, Params
from ..generation import Chunk, GenerationInfo
from ..wire.bedrock.common import effort_asked
from ..wire.sse import sse_json
from .follow import FollowResponse
from .generation import INTERNAL
from .http import read_json
from .validate import DEFAULT_LIMITS, Limits, check_conversation, make_params, message_list, require_object, stop_list


def parse_stream_request(body, default: Params, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Message], Params]:
    """Pure: our request body -> (messages, params), or `BadRequest` naming the field."""
    body = require_object(body)
    messages = []
    for i, m in enumerate(message_list(body.get("messages"), "'messages'", limits)):
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)):
            raise BadRequest(f'messages[{i}] must be {{"role": "user" or "assistant", "content": a string}}.')
        messages.append(Message(m["role"], m["content"]))
    given = require_object(body.get("params") or {}, "'params'")
    unknown = sorted(set(given) - {"max_tokens", "temperature", "top_p", "stop", "system", "reasoning"})
    if unknown:
        raise BadRequest(
            f"params.{unknown[0]} is unknown: use max_tokens, temperature, top_p, stop, system or reasoning."
        )
    system = given.get("system")
    if system is not None and not isinstance(system, str):
        raise BadRequest("params.system must be a string.")
    params = make_params(
        default,
        limits,
        max_tokens=given.get("max_tokens"),
        temperature=given.get("temperature"),
        top_p=given.get("top_p"),
        stop=stop_list(given["stop"], "params.stop", limits) if "stop" in given else default.stop,
        system=system or "",
        names={k: f"params.{k}" for k in ("max_tokens", "temperature", "top_p")},
        reasoning=effort_asked(given.get("reasoning"), "params.reasoning"),
    )
    return check_conversation(messages, params, limits), params


def error_response(err: BaseException) -> JSONResponse:
    if isinstance(err, ResponseStreamingError):
        return JSONResponse({"error": {"message": str(err), "type": type(err).__name__}}, status_code=err.status)
    return JSONResponse({"error": {"message": INTERNAL, "type": "InternalError"}}, status_code=500)


def frame(chunk: Chunk) -> bytes:
    """One log chunk as one SSE event with its sequence number as the event id."""
    d = chunk.data
    if chunk.kind == "text":
        body = sse_json({"text": chunk.text}, "delta")
    elif chunk.kind == "reasoning":  # the thinking, exactly: a signature or base64 redacted bytes where it had them
        body = sse_json({"text": chunk.text, **{k: d[k] for k in ("signature", "redacted") if k in d}}, "reasoning")
    elif chunk.kind == "usage":
        body = sse_json({"input_tokens": d.get("input_tokens"), "output_tokens": d.get("output_tokens")}, "usage")
    elif chunk.kind == "finish":
        body = sse_json(
            {"reason": d.get("reason"), "status": d.get("status"), "metrics": d.get("metrics", {})}, "finish"
        )
    else:
        body = sse_json(
            {
                "message": d.get("message"),
                "type": d.get("type"),
                "status": d.get("http_status"),
                "generation_status": d.get("status"),
            },
            "error",
        )
    return f"id: {chunk.seq}\n".encode() + body


def principal(request: Request, state) -> str | None:
    """Who is calling, when API keys are on: a digest of the Bearer key, or the AWS access key id."""
    if not state.policy.needs_key:
        return None
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return "key:" + hashlib.sha256(value.strip().encode()).hexdigest()[:32]
    if scheme == "AWS4-HMAC-SHA256" and "Credential=" in value:
        return "aws:" + value.split("Credential=", 1)[1].split("/", 1)[0]
    return None


def after_of(request: Request) -> int:
    raw = request.query_params.get("after", request.headers.get("last-event-id", "0")).strip() or "0"
    if not raw.isdigit():
        raise BadRequest("'after' (or the Last-Event-ID header) must be a sequence number: 0 or more.")
    return int(raw)


def router(state) -> APIRouter:
    api = APIRouter()

    def visible(request: Request, gid: str) -> GenerationInfo:
        # Someone else's generation looks exactly like a missing one: ids are not confirmed to strangers.
        info = state.gens().get(gid) if len(gid) <= 64 else None
        if info is None or (info.principal is not None and info.principal != principal(request, state)):
            raise GenerationNotFound(
                f"No generation {gid[:64]!r}: the id is wrong, or it ended longer ago than the "
                "retention time (RS_GENERATION_RETENTION)."
            )
        return info

    @api.post("/v1/stream")
    async def stream(request: Request) -> Response:
        messages, params = parse_stream_request(await read_json(request), state.settings.default_params(), state.limits)
        gens = state.gens()
        gid = gens.start(state.provider, messages, params, principal=principal(request, state))
        return FollowResponse(gens, gid, 0, frame, error_response, True, {"api": "events", "path": request.url.path})

    @api.get("/v1/stream/{gid}")
    async def attach(request: Request, gid: str) -> Response:
        after = after_of(request)
        visible(request, gid)
        fields = {"api": "events", "path": "/v1/stream/{id}"}
        return FollowResponse(state.gens(), gid, after, frame, error_response, False, fields)

    @api.post("/v1/stream/{gid}/stop")
    async def stop(request: Request, gid: str) -> JSONResponse:
        visible(request, gid)
        gens = state.gens()
        stopped = await anyio.to_thread.run_sync(gens.stop, gid)
        info = gens.get(gid)
        return JSONResponse({"id": gid, "stopped": stopped, "status": info.status if info else "expired"})

    return api

"""Bedrock runtime-compatible endpoints: `POST /model/{modelId}/converse`, `/converse-stream`,
`/invoke` and `/invoke-with-response-stream`, so boto3 (and anything built on it) works unchanged
with `endpoint_url` pointed here.

The request side (Converse JSON; each family's native InvokeModel body) is read by `wire.bedrock`
(one module per format) and checked here; every byte of the answer comes from `wire.bedrock`'s encoders. The model id picks the
*format* (for invoke, its family's native JSON); the configured provider always answers.
Credentials and signatures are not checked: this server is for loopback and trusted networks.
"""
from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import BadRequest, MethodNotAllowed, RequestTooLarge, ResponseStreamingError
from ..events import Message, Params
from ..recorder import Recorder
from ..wire import bedrock as wire
from ..wire.bedrock import ConverseEncoder, InvokeEncoder, converse, family_of
from ..wire.bedrock.common import Family, RawRequest
from .generation import Generation, GenerationResponse, failure
from .http import read_json

# ----------------------------------------------------------------------------------------------
# Request side: pure translation
# ----------------------------------------------------------------------------------------------


def _num(value, name: str, lo: float, hi: float, integer: bool = False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'}.")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo:g} and {hi:g}, not {value}.")
    return value


def _stops(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BadRequest(f"{name} must be a list of strings.")
    return tuple(s for s in value if s)


def _params(default: Params, max_tokens, temperature, top_p, stop: tuple[str, ...], system: str, prefix: str) -> Params:
    return Params(
        max_tokens=_num(max_tokens, f"{prefix}max tokens", 1, 1 << 20, integer=True) or default.max_tokens,
        temperature=default.temperature if temperature is None else float(_num(temperature, f"{prefix}temperature", 0, 2)),
        top_p=default.top_p if top_p is None else float(_num(top_p, f"{prefix}top_p", 0, 1)),
        stop=stop, system=system or default.system)


def _check_turns(messages: list[Message]) -> list[Message]:
    if not messages or messages[-1].role != "user" or not messages[-1].content.strip():
        raise BadRequest("The last message must be a non-empty user message.")
    return messages


def _checked(req: RawRequest, default: Params) -> tuple[list[Message], Params]:
    """A request read by its format (`wire.bedrock`) -> checked (messages, params)."""
    stops = _stops(req.stop, req.stop_name) if req.stop_name else ()
    params = _params(default, req.max_tokens, req.temperature, req.top_p, stops, req.system, req.prefix)
    return _check_turns(req.messages), params


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def parse_converse(body, default: Params) -> tuple[list[Message], Params]:
    """A Converse / ConverseStream body -> (messages, params)."""
    return _checked(converse.read_request(_object(body)), default)


def parse_invoke(family: Family | None, model_id: str, body, default: Params) -> tuple[list[Message], Params]:
    """A family's native InvokeModel body -> (messages, params)."""
    if family is None:
        raise BadRequest(f"Unknown model family for {model_id!r}: invoke understands the native bodies of "
                         f"{', '.join(wire.FAMILIES)} model ids (e.g. amazon.nova-lite-v1:0). Converse works with any id.")
    return _checked(family.read_request(_object(body)), default)


# ----------------------------------------------------------------------------------------------
# Answer side: frames from wire.bedrock
# ----------------------------------------------------------------------------------------------


def error_response(err: BaseException) -> Response:
    status, headers, body = wire.error_response_for(err)
    if isinstance(err, (MethodNotAllowed, RequestTooLarge)):  # not Bedrock's own errors: keep the HTTP meaning
        status = err.status
    return Response(body, status_code=status, headers=headers)


class BedrockWire:
    """Frames a generation through one of `wire.bedrock`'s encoders: ConverseStream or a family's
    InvokeModelWithResponseStream (the tests' fake Bedrock frames its streams with the same encoders)."""

    media_type = wire.EVENTSTREAM_CONTENT_TYPE

    def __init__(self, encoder: ConverseEncoder | InvokeEncoder) -> None:
        self.encoder = encoder
        self.headers: Mapping[str, str] = encoder.headers

    def error_response(self, err: ResponseStreamingError) -> Response:
        return error_response(err)

    def start(self) -> bytes:
        return self.encoder.start()

    def piece(self, text: str) -> bytes:
        return self.encoder.piece(text)

    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes:
        if err is not None:
            return wire.stream_exception_frame(err)
        m = rec.metrics
        first_byte = m.ttft_ms if m.ttft_ms is not None else m.duration_ms
        return self.encoder.end(m.stop_reason or "end_turn", m.input_tokens or 0, m.output_tokens, m.duration_ms,
                                first_byte)

    def whole(self, rec: Recorder) -> Response:
        if (err := failure(rec)) is not None:
            return error_response(err)
        m = rec.metrics
        i, o = m.input_tokens or 0, m.output_tokens
        body = self.encoder.whole_body(rec.text, m.stop_reason or "end_turn", i, o, m.duration_ms)
        if isinstance(self.encoder, ConverseEncoder):
            return JSONResponse(body)
        # InvokeModel reports usage and latency in headers too; boto3 exposes them in ResponseMetadata.
        return JSONResponse(body, headers={"x-amzn-bedrock-input-token-count": str(i),
                                           "x-amzn-bedrock-output-token-count": str(o),
                                           "x-amzn-bedrock-invocation-latency": str(m.duration_ms)})


def router(state) -> APIRouter:
    api = APIRouter()

    def respond(request: Request, messages, params, wire_, stream: bool) -> Response:
        gen = Generation(state.provider, messages, params, state.generations)
        return GenerationResponse(gen, wire_, stream, {"api": "bedrock", "path": request.url.path})

    # `:path` because an ARN model id contains "/" once boto3's percent-encoding is decoded.
    @api.post("/model/{model_id:path}/converse-stream")
    async def converse_stream(request: Request, model_id: str) -> Response:
        messages, params = parse_converse(await read_json(request), state.settings.default_params())
        return respond(request, messages, params, BedrockWire(ConverseEncoder()), True)

    @api.post("/model/{model_id:path}/converse")
    async def converse(request: Request, model_id: str) -> Response:
        messages, params = parse_converse(await read_json(request), state.settings.default_params())
        return respond(request, messages, params, BedrockWire(ConverseEncoder()), False)

    @api.post("/model/{model_id:path}/invoke-with-response-stream")
    async def invoke_stream(request: Request, model_id: str) -> Response:
        family = family_of(model_id)
        messages, params = parse_invoke(family, model_id, await read_json(request), state.settings.default_params())
        return respond(request, messages, params, BedrockWire(InvokeEncoder(family, model_id)), True)

    @api.post("/model/{model_id:path}/invoke")
    async def invoke(request: Request, model_id: str) -> Response:
        family = family_of(model_id)
        messages, params = parse_invoke(family, model_id, await read_json(request), state.settings.default_params())
        return respond(request, messages, params, BedrockWire(InvokeEncoder(family, model_id)), False)

    return api

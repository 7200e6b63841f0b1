"""Bedrock runtime-compatible endpoints: `POST /model/{modelId}/converse`, `/converse-stream`,
`/invoke` and `/invoke-with-response-stream`, so boto3 (and anything built on it) works unchanged
with `endpoint_url` pointed here.

The request side (Converse JSON; each family's native InvokeModel body) is read by `wire.bedrock`
(one module per format) and checked here; every byte of the answer comes from `wire.bedrock`'s encoders.
The model id picks the
*format* (for invoke, its family's native JSON); the configured provider always answers.
Who may call is checked before any route runs (`access.py`: Host, Origin, API keys, AWS SigV4).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import HTTP_REFUSALS, BadRequest, ResponseStreamingError, Unauthorized
from ..events import Message, Params, ReasoningDelta
from ..reasoning import blocks_of
from ..recorder import Recorder
from ..wire import bedrock as wire
from ..wire.bedrock import ConverseEncoder, InvokeEncoder, converse, family_of
from ..wire.bedrock.common import Family, RawRequest
from .generation import Generation, GenerationResponse, failure
from .http import read_json
from .validate import DEFAULT_LIMITS, Limits, check_conversation, make_params, require_object, stop_list

# ----------------------------------------------------------------------------------------------
# Request side: pure translation
# ----------------------------------------------------------------------------------------------


def _checked(req: RawRequest, default: Params, limits: Limits) -> tuple[list[Message], Params]:
    """A request read by its format (`wire.bedrock`) -> checked (messages, params), limits included."""
    stops = stop_list(req.stop, req.stop_name, limits) if req.stop_name else ()
    names = {
        k: f"{req.prefix}{n}"
        for k, n in (("max_tokens", "max tokens"), ("temperature", "temperature"), ("top_p", "top_p"))
    }
    params = make_params(
        default,
        limits,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=stops,
        system=req.system,
        names=names,
        reasoning=req.reasoning,
    )
    return check_conversation(req.messages, params, limits), params


def parse_converse(body, default: Params, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Message], Params]:
    """A Converse / ConverseStream body -> (messages, params)."""
    return _checked(converse.read_request(require_object(body)), default, limits)


def parse_invoke(
    family: Family | None, model_id: str, body, default: Params, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[Message], Params]:
    """A family's native InvokeModel body -> (messages, params)."""
    if family is None:
        raise BadRequest(
            f"Unknown model family for {model_id!r}: invoke understands the native bodies of "
            f"{', '.join(wire.FAMILIES)} model ids (e.g. amazon.nova-lite-v1:0). Converse works with any id."
        )
    return _checked(family.read_request(require_object(body)), default, limits)


# ----------------------------------------------------------------------------------------------
# Answer side: frames from wire.bedrock
# ----------------------------------------------------------------------------------------------


def error_response(err: BaseException) -> Response:
    if isinstance(err, Unauthorized):  # what AWS's front door says for a key it doesn't know
        status, headers, body = wire.error_response("UnrecognizedClientException", str(err))
    else:
        status, headers, body = wire.error_response_for(err)
    if isinstance(err, HTTP_REFUSALS):  # not Bedrock's own errors: keep the HTTP meaning
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

    def reasoning(self, thought: ReasoningDelta) -> bytes:
        return self.encoder.reasoning(thought)

    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes:
        if err is not None:
            return wire.stream_exception_frame(err)
        m = rec.metrics
        first_byte = m.ttft_ms if m.ttft_ms is not None else m.duration_ms
        return self.encoder.end(
            m.stop_reason or "end_turn", m.input_tokens or 0, m.output_tokens, m.duration_ms, first_byte
        )

    def whole(self, rec: Recorder) -> Response:
        if (err := failure(rec)) is not None:
            return error_response(err)
        m = rec.metrics
        i, o = m.input_tokens or 0, m.output_tokens
        body = self.encoder.whole_body(
            rec.text, m.stop_reason or "end_turn", i, o, m.duration_ms, blocks_of(rec.reasoning)
        )
        if isinstance(self.encoder, ConverseEncoder):
            return JSONResponse(body)
        # InvokeModel reports usage and latency in headers too; boto3 exposes them in ResponseMetadata.
        return JSONResponse(
            body,
            headers={
                "x-amzn-bedrock-input-token-count": str(i),
                "x-amzn-bedrock-output-token-count": str(o),
                "x-amzn-bedrock-invocation-latency": str(m.duration_ms),
            },
        )


def router(state) -> APIRouter:
    api = APIRouter()

    def respond(request: Request, messages, params, wire_, stream: bool) -> Response:
        gen = Generation(state.provider, messages, params, state.generations)
        return GenerationResponse(gen, wire_, stream, {"api": "bedrock", "path": request.url.path})

    # `:path` because an ARN model id contains "/" once boto3's percent-encoding is decoded.
    @api.post("/model/{model_id:path}/converse-stream")
    async def converse_stream(request: Request, model_id: str) -> Response:
        messages, params = parse_converse(await read_json(request), state.settings.default_params(), state.limits)
        return respond(request, messages, params, BedrockWire(ConverseEncoder()), True)

    @api.post("/model/{model_id:path}/converse")
    async def converse(request: Request, model_id: str) -> Response:
        messages, params = parse_converse(await read_json(request), state.settings.default_params(), state.limits)
        return respond(request, messages, params, BedrockWire(ConverseEncoder()), False)

    @api.post("/model/{model_id:path}/invoke-with-response-stream")
    async def invoke_stream(request: Request, model_id: str) -> Response:
        family = family_of(model_id)
        body = await read_json(request)
        messages, params = parse_invoke(family, model_id, body, state.settings.default_params(), state.limits)
        assert family is not None  # parse_invoke refused an unknown one
        return respond(request, messages, params, BedrockWire(InvokeEncoder(family, model_id)), True)

    @api.post("/model/{model_id:path}/invoke")
    async def invoke(request: Request, model_id: str) -> Response:
        family = family_of(model_id)
        body = await read_json(request)
        messages, params = parse_invoke(family, model_id, body, state.settings.default_params(), state.limits)
        assert family is not None  # parse_invoke refused an unknown one
        return respond(request, messages, params, BedrockWire(InvokeEncoder(family, model_id)), False)

    return api

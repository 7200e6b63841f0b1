"""Bedrock runtime's wire format, encoding side: our events in, the bytes Bedrock would send out.

Pure functions, no I/O, no boto3. Used by the HTTP server (`response-streaming serve`) for its
Bedrock-compatible endpoints and by the tests' fake Bedrock runtime; both are read back by boto3's
own parser, which is what keeps these shapes honest.

Three things live here:
- ConverseStream (`POST /model/{id}/converse-stream`): one event-stream frame per event,
  messageStart · contentBlockDelta* · contentBlockStop · messageStop · metadata.
- InvokeModelWithResponseStream (`POST /model/{id}/invoke-with-response-stream`): `chunk` frames
  whose payload is `{"bytes": base64(<the model family's own JSON chunk>)}`; the last native chunk
  carries `amazon-bedrock-invocationMetrics`.
- Errors: the JSON error responses sent instead of a stream (status, `x-amzn-ErrorType` header,
  `{"message": ...}`), and the exception frames sent inside a stream.

Families (`FAMILIES`) are the strings `bedrock_catalog.family_of(model_id)` returns.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Iterable, Iterator

from ..errors import (AccessDenied, BadRequest, ConfigError, ModelNotFound, ProviderUnavailable,
                      ResponseStreamingError, Throttled)
from ..events import Event, Finish, TextDelta, Usage
from .eventstream import event_frame, exception_frame

FAMILIES = ("anthropic", "meta", "mistral", "titan", "nova", "cohere")

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"

# Bedrock pads every event payload with a "p" field of varying length so that frame sizes do not
# reveal token lengths; boto3 ignores it. We send it too, so clients meet the real shape.
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _pad(body: dict, n: int) -> dict:
    return {**body, "p": _PAD[: 1 + n % len(_PAD)]}


# ---------------------------------------------------------------------------------------------
# ConverseStream
# ---------------------------------------------------------------------------------------------

def converse_message_start(role: str = "assistant") -> bytes:
    """The `messageStart` frame: `{"role": "assistant"}`."""
    return event_frame("messageStart", _pad({"role": role}, 0))


def converse_content_delta(text: str, index: int = 0) -> bytes:
    """A `contentBlockDelta` frame carrying one piece of text: `{"contentBlockIndex": 0, "delta": {"text": ...}}`."""
    return event_frame("contentBlockDelta", _pad({"contentBlockIndex": index, "delta": {"text": text}}, len(text)))


def converse_content_stop(index: int = 0) -> bytes:
    """The `contentBlockStop` frame: `{"contentBlockIndex": 0}`."""
    return event_frame("contentBlockStop", _pad({"contentBlockIndex": index}, 1))


def converse_message_stop(stop_reason: str) -> bytes:
    """The `messageStop` frame: `{"stopReason": ...}`.

    `stop_reason` is Bedrock's word (end_turn, max_tokens, stop_sequence, content_filtered,
    guardrail_intervened, tool_use, ...); our `events.StopReason` words are valid Bedrock words
    except "other", which is sent as "end_turn".
    """
    return event_frame("messageStop", _pad({"stopReason": "end_turn" if stop_reason == "other" else stop_reason}, 2))


def converse_metadata(input_tokens: int, output_tokens: int, latency_ms: int) -> bytes:
    """The `metadata` frame: `{"usage": {inputTokens, outputTokens, totalTokens}, "metrics": {"latencyMs"}}`."""
    body = {"usage": {"inputTokens": input_tokens, "outputTokens": output_tokens,
                      "totalTokens": input_tokens + output_tokens},
            "metrics": {"latencyMs": latency_ms}}
    return event_frame("metadata", _pad(body, 3))


def converse_stream_frames(events: Iterable[Event]) -> Iterator[bytes]:
    """Our events -> ConverseStream frames, in Bedrock's order.

    `messageStart` comes first; each `TextDelta` becomes a `contentBlockDelta`; `Finish` becomes
    `contentBlockStop` + `messageStop` + `metadata` (usage from the `Usage` event, which our
    providers send before `Finish`). If `events` ends without `Finish`, no `messageStop` is sent:
    the client then sees an incomplete stream, which is the truth. Exceptions from `events` pass
    through; a server turns them into `stream_exception_frame` itself.
    """
    started = time.monotonic()
    usage = Usage(0, 0)
    yield converse_message_start()
    for event in events:
        if isinstance(event, TextDelta):
            if event.text:
                yield converse_content_delta(event.text)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            latency = event.latency_ms if event.latency_ms is not None else int((time.monotonic() - started) * 1000)
            yield converse_content_stop()
            yield converse_message_stop(event.reason)
            yield converse_metadata(usage.input_tokens, usage.output_tokens, latency)
            return


# ---------------------------------------------------------------------------------------------
# InvokeModelWithResponseStream
# ---------------------------------------------------------------------------------------------

def chunk_frame(native: dict) -> bytes:
    """One `chunk` frame: `{"bytes": base64(json(native))}`, `native` being a family's own JSON chunk."""
    raw = json.dumps(native, separators=(",", ":")).encode()
    return event_frame("chunk", _pad({"bytes": base64.b64encode(raw).decode()}, len(raw)))


def invocation_metrics(input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> dict:
    """The `amazon-bedrock-invocationMetrics` object Bedrock adds to a stream's last native chunk."""
    return {"inputTokenCount": input_tokens, "outputTokenCount": output_tokens,
            "invocationLatency": latency_ms, "firstByteLatency": first_byte_ms}


# Our stop reasons in each family's own words.
_NATIVE_STOP = {
    "anthropic": {"end_turn": "end_turn", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence",
                  "content_filtered": "end_turn", "other": "end_turn"},
    "meta": {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop",
             "content_filtered": "stop", "other": "stop"},
    "mistral": {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop",
                "content_filtered": "stop", "other": "stop"},
    "titan": {"end_turn": "FINISH", "max_tokens": "LENGTH", "stop_sequence": "STOP_CRITERIA_MET",
              "content_filtered": "CONTENT_FILTERED", "other": "FINISH"},
    "nova": {"end_turn": "end_turn", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence",
             "content_filtered": "content_filtered", "other": "end_turn"},
    "cohere": {"end_turn": "COMPLETE", "max_tokens": "MAX_TOKENS", "stop_sequence": "COMPLETE",
               "content_filtered": "ERROR_TOXIC", "other": "COMPLETE"},
}


def native_text_chunk(family: str, text: str, *, index: int = 0, input_tokens: int | None = None) -> dict:
    """The family's JSON chunk carrying one piece of text (`index`: 0 for the first piece).

    anthropic: `{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text"}}`
    meta:      `{"generation", "prompt_token_count" (first chunk only), "generation_token_count", "stop_reason": null}`
    mistral:   `{"outputs": [{"text", "stop_reason": null}]}`
    titan:     `{"outputText", "index", "totalOutputTextTokenCount", "completionReason": null, "inputTextTokenCount"}`
    nova:      `{"contentBlockDelta": {"delta": {"text"}, "contentBlockIndex": 0}}`
    cohere:    `{"text", "is_finished": false}` (legacy Command, /generate streaming)
    """
    if family == "anthropic":
        return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    if family == "meta":
        return {"generation": text, "prompt_token_count": input_tokens if index == 0 else None,
                "generation_token_count": index + 1, "stop_reason": None}
    if family == "mistral":
        return {"outputs": [{"text": text, "stop_reason": None}]}
    if family == "titan":
        return {"outputText": text, "index": 0, "totalOutputTextTokenCount": index + 1, "completionReason": None,
                "inputTextTokenCount": input_tokens if index == 0 else None}
    if family == "nova":
        return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}
    if family == "cohere":
        return {"text": text, "is_finished": False}
    raise ValueError(f"unknown Bedrock model family {family!r}")


def native_head_chunks(family: str, model_id: str = "", input_tokens: int = 0) -> list[dict]:
    """Chunks a family sends before any text (anthropic: message_start + content_block_start; nova: messageStart)."""
    if family == "anthropic":
        return [{"type": "message_start",
                 "message": {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": model_id,
                             "content": [], "stop_reason": None, "stop_sequence": None,
                             "usage": {"input_tokens": input_tokens, "output_tokens": 1}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    if family == "nova":
        return [{"messageStart": {"role": "assistant"}}]
    return []


def native_tail_chunks(family: str, reason: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
    """Chunks a family sends after the text; the last one carries `amazon-bedrock-invocationMetrics`.

    `reason` is one of our `events.StopReason` words; it is written in the family's own words.
    """
    stop = _NATIVE_STOP[family][reason]
    key = "amazon-bedrock-invocationMetrics"
    if family == "anthropic":
        return [{"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                 "usage": {"output_tokens": output_tokens}},
                {"type": "message_stop", key: metrics}]
    if family == "meta":
        return [{"generation": "", "prompt_token_count": None, "generation_token_count": output_tokens,
                 "stop_reason": stop, key: metrics}]
    if family == "mistral":
        return [{"outputs": [{"text": "", "stop_reason": stop}], key: metrics}]
    if family == "titan":
        return [{"outputText": "", "index": 0, "totalOutputTextTokenCount": output_tokens, "completionReason": stop,
                 "inputTextTokenCount": None, key: metrics}]
    if family == "nova":
        return [{"contentBlockStop": {"contentBlockIndex": 0}},
                {"messageStop": {"stopReason": stop}},
                {"metadata": {"usage": {"inputTokens": input_tokens, "outputTokens": output_tokens}},
                 key: metrics}]
    if family == "cohere":
        return [{"is_finished": True, "finish_reason": stop, key: metrics}]
    raise ValueError(f"unknown Bedrock model family {family!r}")


def invoke_stream_frames(family: str, events: Iterable[Event], model_id: str = "",
                         input_tokens: int = 0) -> Iterator[bytes]:
    """Our events -> InvokeModelWithResponseStream `chunk` frames in `family`'s native JSON.

    Head chunks first, one chunk per `TextDelta`, and on `Finish` the family's closing chunks with
    stop reason, usage and `amazon-bedrock-invocationMetrics` (latency from `Finish.latency_ms`,
    first-byte latency measured here). Without `Finish` no closing chunk is sent (an incomplete
    stream). `input_tokens` is what the head chunks report before the `Usage` event is known.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown Bedrock model family {family!r}")
    started = time.monotonic()
    first_byte_ms: int | None = None
    usage = Usage(input_tokens, 0)
    for native in native_head_chunks(family, model_id, input_tokens):
        yield chunk_frame(native)
    n = 0
    for event in events:
        if isinstance(event, TextDelta):
            if not event.text:
                continue
            if first_byte_ms is None:
                first_byte_ms = int((time.monotonic() - started) * 1000)
            yield chunk_frame(native_text_chunk(family, event.text, index=n, input_tokens=input_tokens))
            n += 1
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            latency = event.latency_ms if event.latency_ms is not None else int((time.monotonic() - started) * 1000)
            metrics = invocation_metrics(usage.input_tokens, usage.output_tokens, latency,
                                         first_byte_ms if first_byte_ms is not None else latency)
            for native in native_tail_chunks(family, event.reason, usage.input_tokens, usage.output_tokens, metrics):
                yield chunk_frame(native)
            return


# ---------------------------------------------------------------------------------------------
# Whole (non-streamed) answers: Converse and InvokeModel
# ---------------------------------------------------------------------------------------------

def converse_response(text: str, reason: str, input_tokens: int, output_tokens: int, latency_ms: int) -> dict:
    """A Converse response body: output message, `stopReason`, `usage`, `metrics`."""
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn" if reason == "other" else reason,
            "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens,
                      "totalTokens": input_tokens + output_tokens},
            "metrics": {"latencyMs": latency_ms}}


def native_response(family: str, text: str, reason: str, input_tokens: int, output_tokens: int,
                    model_id: str = "") -> dict:
    """An InvokeModel response body in `family`'s own JSON (`reason`: one of our StopReason words)."""
    stop = _NATIVE_STOP[family][reason]
    if family == "anthropic":
        return {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": model_id,
                "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}
    if family == "meta":
        return {"generation": text, "prompt_token_count": input_tokens, "generation_token_count": output_tokens,
                "stop_reason": stop}
    if family == "mistral":
        return {"outputs": [{"text": text, "stop_reason": stop}]}
    if family == "titan":
        return {"inputTextTokenCount": input_tokens,
                "results": [{"tokenCount": output_tokens, "outputText": text, "completionReason": stop}]}
    if family == "nova":
        return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": stop,
                "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens,
                          "totalTokens": input_tokens + output_tokens}}
    if family == "cohere":
        return {"id": "00000000-0000-0000-0000-000000000000",
                "generations": [{"id": "00000000-0000-0000-0000-000000000001", "text": text, "finish_reason": stop}]}
    raise ValueError(f"unknown Bedrock model family {family!r}")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

# Bedrock's error types and their HTTP statuses (from the bedrock-runtime service model).
ERROR_STATUS = {
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ValidationException": 400,
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 400,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    # Not Bedrock's own but sent by AWS's front door for bad or expired credentials.
    "UnrecognizedClientException": 403,
    "ExpiredTokenException": 403,
}

# Exceptions that may arrive inside a stream, by API.
CONVERSE_STREAM_EXCEPTIONS = ("internalServerException", "modelStreamErrorException", "validationException",
                              "throttlingException", "serviceUnavailableException")
INVOKE_STREAM_EXCEPTIONS = CONVERSE_STREAM_EXCEPTIONS + ("modelTimeoutException",)


def error_response(error_type: str, message: str, request_id: str = "00000000-0000-0000-0000-000000000000"
                   ) -> tuple[int, dict[str, str], bytes]:
    """A Bedrock JSON error response: `(status, headers, body)`.

    Headers carry `x-amzn-ErrorType: <Type>:http://internal.amazon.com/coral/com.amazon.bedrock/`
    (botocore reads the error code from it), `x-amzn-RequestId` and the JSON content type; the body
    is `{"message": ...}`. `error_type` is a key of `ERROR_STATUS`.
    """
    headers = {"Content-Type": "application/json",
               "x-amzn-RequestId": request_id,
               "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return ERROR_STATUS[error_type], headers, json.dumps({"message": message}).encode()


def error_type_for(err: BaseException) -> str:
    """The Bedrock error type a server answers with for one of our errors (before the stream)."""
    if isinstance(err, AccessDenied):
        return "AccessDeniedException"
    if isinstance(err, ModelNotFound):
        return "ResourceNotFoundException"
    if isinstance(err, (BadRequest, ConfigError)):
        return "ValidationException"
    if isinstance(err, Throttled):
        return "ThrottlingException"
    if isinstance(err, ProviderUnavailable):
        return "ServiceUnavailableException"
    return "InternalServerException"


def error_response_for(err: BaseException) -> tuple[int, dict[str, str], bytes]:
    """`error_response` for one of our errors; the message is `str(err)` for our own (safe) errors."""
    message = str(err) if isinstance(err, ResponseStreamingError) else "The model failed; see the server log."
    return error_response(error_type_for(err), message)


def stream_exception_frame(err: BaseException) -> bytes:
    """The in-stream exception frame a server sends when the stream breaks after it started.

    Throttled -> throttlingException, BadRequest -> validationException, ProviderUnavailable ->
    serviceUnavailableException, anything else -> modelStreamErrorException (the model failed
    mid-answer). Each of these is valid for both streaming APIs.
    """
    if isinstance(err, Throttled):
        kind = "throttlingException"
    elif isinstance(err, (BadRequest, ConfigError)):
        kind = "validationException"
    elif isinstance(err, ProviderUnavailable):
        kind = "serviceUnavailableException"
    else:
        kind = "modelStreamErrorException"
    message = str(err) if isinstance(err, ResponseStreamingError) else "The model failed mid-answer; see the server log."
    return exception_frame(kind, message)

"""wire/bedrock.py read back by botocore's own event-stream and rest-json parsers (no HTTP here).

The bytes are split at random points before botocore sees them, like a network would.
"""

from __future__ import annotations

import base64
import json
import random

import botocore.session
import pytest
from botocore.eventstream import EventStream
from botocore.exceptions import EventStreamError
from botocore.parsers import RestJSONParser

from response_streaming.errors import AccessDenied, BadRequest, ModelNotFound, ProviderUnavailable, Throttled
from response_streaming.events import Finish, TextDelta, Usage
from response_streaming.wire import bedrock as wire

MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


class _Raw:
    """Quacks like the urllib3 response botocore reads: `.stream()` yields byte chunks."""

    def __init__(self, data: bytes, seed: int = 0):
        rnd = random.Random(seed)
        cuts = sorted(rnd.sample(range(1, len(data)), min(12, len(data) - 1)))
        self.parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    def stream(self):
        yield from self.parts

    def close(self):
        pass


def parse(data: bytes, op: str, seed: int = 0) -> list[dict]:
    out = MODEL.operation_model(op).output_shape
    member = "stream" if op == "ConverseStream" else "body"
    shape = out.members[member]
    return list(EventStream(_Raw(data, seed), shape, RestJSONParser()._event_stream_parser, op))


EVENTS = [TextDelta("Hello"), TextDelta(", wörld ✓"), Usage(7, 3), Finish("max_tokens", latency_ms=42)]


@pytest.mark.parametrize("seed", range(5))
def test_converse_stream_frames_parse_as_boto3_events(seed):
    events = parse(b"".join(wire.encode(wire.ConverseEncoder(), EVENTS)), "ConverseStream", seed)
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0]["messageStart"] == {"role": "assistant"}
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1:3]) == "Hello, wörld ✓"
    assert events[4]["messageStop"] == {"stopReason": "max_tokens"}
    assert events[5]["metadata"] == {
        "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
        "metrics": {"latencyMs": 42},
    }


def test_converse_without_finish_sends_no_message_stop():
    events = parse(b"".join(wire.encode(wire.ConverseEncoder(), [TextDelta("half")])), "ConverseStream")
    assert [next(iter(e)) for e in events] == ["messageStart", "contentBlockDelta"]


@pytest.mark.parametrize("family", wire.FAMILIES)
def test_invoke_chunks_carry_native_json_and_invocation_metrics(family):
    data = b"".join(wire.encode(wire.InvokeEncoder(wire.FAMILIES[family], "m", 7), EVENTS, input_tokens=7))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in parse(data, "InvokeModelWithResponseStream")]
    last = chunks[-1]
    assert last["amazon-bedrock-invocationMetrics"]["inputTokenCount"] == 7
    assert last["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 3
    assert last["amazon-bedrock-invocationMetrics"]["invocationLatency"] == 42
    # Each family's text lives under its own key; the text must survive intact.
    raw = json.dumps(chunks, ensure_ascii=False)
    assert "Hello" in raw and ", wörld ✓" in raw
    assert sum("amazon-bedrock-invocationMetrics" in c for c in chunks) == 1


def test_chunk_frame_is_base64_of_compact_json():
    frame = wire.chunk_frame({"outputText": "x"})
    [event] = parse(frame, "InvokeModelWithResponseStream")
    assert event["chunk"]["bytes"] == b'{"outputText":"x"}'
    assert base64.b64decode(base64.b64encode(event["chunk"]["bytes"])) == b'{"outputText":"x"}'


@pytest.mark.parametrize("kind", wire.INVOKE_STREAM_EXCEPTIONS)
def test_in_stream_exceptions_raise_eventstreamerror_with_their_code(kind):
    from response_streaming.wire.eventstream import exception_frame

    data = wire.chunk_frame({"outputText": "x"}) + exception_frame(kind, "boom")
    with pytest.raises(EventStreamError) as info:
        parse(data, "InvokeModelWithResponseStream")
    assert info.value.response["Error"]["Code"] == kind
    assert info.value.response["Error"]["Message"] == "boom"


@pytest.mark.parametrize(
    "err, kind",
    [
        (Throttled("t"), "throttlingException"),
        (BadRequest("b"), "validationException"),
        (ProviderUnavailable("u"), "serviceUnavailableException"),
        (RuntimeError("secret detail"), "modelStreamErrorException"),
    ],
)
def test_stream_exception_frame_for_our_errors(err, kind):
    with pytest.raises(EventStreamError) as info:
        parse(wire.stream_exception_frame(err), "ConverseStream")
    assert info.value.response["Error"]["Code"] == kind
    assert "secret detail" not in info.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "err, status, kind",
    [
        (AccessDenied("a"), 403, "AccessDeniedException"),
        (ModelNotFound("m"), 404, "ResourceNotFoundException"),
        (BadRequest("b"), 400, "ValidationException"),
        (Throttled("t"), 429, "ThrottlingException"),
    ],
)
def test_error_responses_parse_as_botocore_errors(err, status, kind):
    code, headers, body = wire.error_response_for(err)
    assert code == status
    parsed = RestJSONParser().parse(
        {"status_code": code, "headers": {k.lower(): v for k, v in headers.items()}, "body": body},
        MODEL.operation_model("ConverseStream").output_shape,
    )
    assert parsed["Error"]["Code"] == kind
    assert parsed["Error"]["Message"] == str(err)

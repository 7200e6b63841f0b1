"""Framing shared by both streaming APIs: Bedrock's padding, invocation metrics, and `encode`, which
turns our events into a whole stream through an encoder (`ConverseEncoder` or `InvokeEncoder`).

`serve` drives the same encoders piece by piece from a live generation; the tests' fake Bedrock
uses `encode`, so both send what one encoder writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from ...events import Event, Finish, ReasoningBlock, ReasoningDelta, TextDelta, Usage

# Bedrock pads every event payload with a "p" field of varying length so that frame sizes do not
# reveal token lengths; boto3 ignores it. We send it too, so clients meet the real shape.
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def pad(body: dict, n: int) -> dict:
    return {**body, "p": _PAD[: 1 + n % len(_PAD)]}


def invocation_metrics(input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> dict:
    """The `amazon-bedrock-invocationMetrics` object Bedrock adds to a stream's last native chunk."""
    return {
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
        "invocationLatency": latency_ms,
        "firstByteLatency": first_byte_ms,
    }


class Encoder(Protocol):
    """How one streaming API frames an answer; `reason` is one of our StopReason words."""

    headers: Mapping[str, str]  # response headers beyond the event-stream content type

    def start(self) -> bytes: ...
    def piece(self, text: str) -> bytes: ...
    def reasoning(self, thought: ReasoningDelta) -> bytes: ...
    def end(self, reason: str, input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> bytes: ...
    def whole_body(
        self,
        text: str,
        reason: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: int,
        reasoning: Sequence[ReasoningBlock] = (),
    ) -> dict: ...


def encode(encoder: Encoder, events: Iterable[Event], input_tokens: int = 0) -> Iterator[bytes]:
    """Our events -> the frames of one stream, in Bedrock's order.

    Usage comes from the `Usage` event (our providers send it before `Finish`); latency from
    `Finish.latency_ms` or measured here. If `events` ends without `Finish`, no closing frames are
    sent: the client then sees an incomplete stream, which is the truth. Exceptions pass through; a
    server turns them into `errors.stream_exception_frame` itself.
    """
    started = time.monotonic()
    first_byte_ms: int | None = None
    usage = Usage(input_tokens, 0)
    if head := encoder.start():  # families without head chunks start with nothing
        yield head
    for event in events:
        if isinstance(event, TextDelta) and event.text:
            if first_byte_ms is None:
                first_byte_ms = int((time.monotonic() - started) * 1000)
            yield encoder.piece(event.text)
        elif isinstance(event, ReasoningDelta):
            if first_byte_ms is None:
                first_byte_ms = int((time.monotonic() - started) * 1000)
            if frames := encoder.reasoning(event):
                yield frames
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            latency = event.latency_ms if event.latency_ms is not None else int((time.monotonic() - started) * 1000)
            first = first_byte_ms if first_byte_ms is not None else latency
            yield encoder.end(event.reason, usage.input_tokens, usage.output_tokens, latency, first)
            return

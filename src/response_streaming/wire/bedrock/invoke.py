"""InvokeModelWithResponseStream: `chunk` frames whose payload is `{"bytes": base64(<a family's JSON chunk>)}`.

Client side: `events` reads decoded native chunks through their family. Server side: `InvokeEncoder`
writes them (head chunks, one chunk per piece, tail chunks with `amazon-bedrock-invocationMetrics`),
and `whole_body` an InvokeModel answer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence

from ...events import Event, Finish, Message, Params, TextDelta, Usage
from ..eventstream import event_frame
from .common import METRICS_KEY, Family, base_model_id, normalise_stop
from .frames import invocation_metrics, pad


def request_body(family: Family, model_id: str, messages: Sequence[Message], params: Params) -> dict:
    """The native body for `model_id`: the family's own, with its thinking fields when `params.reasoning` asks."""
    fields, params = family.thinking(base_model_id(model_id), params)
    return {**family.request_body(messages, params), **fields}


def chunk_frame(native: dict) -> bytes:
    """One `chunk` frame: `{"bytes": base64(json(native))}`, `native` being a family's own JSON chunk."""
    raw = json.dumps(native, separators=(",", ":")).encode()
    return event_frame("chunk", pad({"bytes": base64.b64encode(raw).decode()}, len(raw)))


def events(family: Family, chunks: Iterable[dict]) -> Iterator[Event]:
    """Decoded native chunks -> our events; usage preferably from `amazon-bedrock-invocationMetrics`.

    `Usage` and `Finish` are sent when the stream ends, and only if the family's final chunk came.
    """
    stop: str | None = None
    done = False
    inp = out = latency = None
    for chunk in chunks:
        c = family.parse_chunk(chunk)
        if c.reasoning is not None:
            yield c.reasoning
        if c.text:
            yield TextDelta(c.text)
        stop = c.stop or stop
        inp = c.input_tokens if c.input_tokens is not None else inp
        out = c.output_tokens if c.output_tokens is not None else out
        done = done or c.done
        metrics = chunk.get(METRICS_KEY)
        if metrics:  # Bedrock's own count beats the model's
            inp = metrics.get("inputTokenCount", inp)
            out = metrics.get("outputTokenCount", out)
            latency = metrics.get("invocationLatency")
    if not done:
        return
    if inp is not None or out is not None:
        yield Usage(int(inp or 0), int(out or 0))
    yield Finish(normalise_stop(stop), latency_ms=latency)


class InvokeEncoder:
    """The `chunk` frames of one answer in `family`'s native JSON, piece by piece.

    `input_tokens` is what the head chunks report before usage is known (Bedrock counts the prompt
    first); None leaves it out where the family allows.
    """

    # The native JSON's content type, as Bedrock names it (boto3's `contentType`).
    headers = {"x-amzn-bedrock-content-type": "application/json"}

    def __init__(self, family: Family, model_id: str = "", input_tokens: int | None = None) -> None:
        self.family, self.model_id, self.input_tokens = family, model_id, input_tokens
        self.n = 0

    def start(self) -> bytes:
        return b"".join(map(chunk_frame, self.family.head_chunks(self.model_id, self.input_tokens or 0)))

    def piece(self, text: str) -> bytes:
        if not text:
            return b""
        self.n += 1
        return chunk_frame(self.family.text_chunk(text, self.n - 1, self.input_tokens))

    def end(self, reason: str, input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> bytes:
        metrics = invocation_metrics(input_tokens, output_tokens, latency_ms, first_byte_ms)
        stop = self.family.stop_words[reason]
        return b"".join(map(chunk_frame, self.family.tail_chunks(stop, input_tokens, output_tokens, metrics)))

    def whole_body(self, text: str, reason: str, input_tokens: int, output_tokens: int, latency_ms: int) -> dict:
        stop = self.family.stop_words[reason]
        return self.family.whole_body(text, stop, input_tokens, output_tokens, self.model_id)

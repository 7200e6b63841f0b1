"""InvokeModelWithResponseStream: `chunk` frames whose payload is `{"bytes": base64(<a family's JSON chunk>)}`.

Client side: `events` reads decoded native chunks through their family. Server side: `InvokeEncoder`
writes them (head chunks, one chunk per piece, tail chunks with `amazon-bedrock-invocationMetrics`),
and `whole_body` an InvokeModel answer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence

from ...events import Event, Finish, Message, Params, ReasoningBlock, ReasoningDelta, TextDelta, Usage
from ..eventstream import event_frame
from .common import METRICS_KEY, Family, base_model_id, normalise_stop, redacted_data
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
    first); None leaves it out where the family allows. Thinking goes out as the family sends it: in
    blocks of its own (Anthropic: `thinking_delta`, `signature_delta`, a `redacted_thinking` block,
    then the text at the next index), inline in the text (DeepSeek-R1: "…</think>\n\n"; gpt-oss:
    `<reasoning>…</reasoning>`), or not at all where the family has no place for it.
    """

    # The native JSON's content type, as Bedrock names it (boto3's `contentType`).
    headers = {"x-amzn-bedrock-content-type": "application/json"}

    def __init__(self, family: Family, model_id: str = "", input_tokens: int | None = None) -> None:
        self.family, self.model_id, self.input_tokens = family, model_id, input_tokens
        self.n = 0
        self.block = 0
        self.open: str | None = None  # the kind of the open block (has_blocks), or "thought" while inline
        self.signed = False  # the open thinking block got its signature: more thinking is a new block

    def start(self) -> bytes:
        return b"".join(map(chunk_frame, self.family.head_chunks(self.model_id, self.input_tokens or 0)))

    def _switch(self, kind: str, data: str = "") -> list[dict]:
        if self.open == kind and not (kind == "thinking" and self.signed) and kind != "redacted_thinking":
            return []
        out = []
        if self.open is not None:
            out += self.family.close_block(self.block)
            self.block += 1
        self.open, self.signed = kind, False
        return out + self.family.open_block(kind, self.block, data)

    def _text(self, text: str) -> dict:
        self.n += 1
        index = self.block if self.family.has_blocks else self.n - 1
        return self.family.text_chunk(text, index, self.input_tokens)

    def piece(self, text: str) -> bytes:
        if not text:
            return b""
        chunks: list[dict] = []
        if self.family.has_blocks:
            chunks += self._switch("text")
        elif self.open == "thought":  # close the inline thought in front of the answer
            text = ("</think>\n\n" if self.family.inline_reasoning == "inside" else "</reasoning>") + text
            self.open = "text"
        chunks.append(self._text(text))
        return b"".join(map(chunk_frame, chunks))

    def reasoning(self, thought: ReasoningDelta) -> bytes:
        family = self.family
        chunks: list[dict | None] = []
        if family.has_blocks:
            if thought.redacted:
                chunks += self._switch("redacted_thinking", redacted_data(thought.redacted))
            if thought.text or thought.signature:
                chunks += self._switch("thinking")
                if thought.text:
                    chunks.append(family.thinking_chunk(ReasoningDelta(thought.text), self.block))
                if thought.signature:
                    chunks.append(family.thinking_chunk(ReasoningDelta(signature=thought.signature), self.block))
                    self.signed = True
        elif family.inline_reasoning and thought.text and self.open in (None, "thought"):
            opener = "<reasoning>" if family.inline_reasoning == "tags" and self.open is None else ""
            self.open = "thought"
            chunks.append(self._text(opener + thought.text))
        return b"".join(chunk_frame(c) for c in chunks if c is not None)

    def end(self, reason: str, input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> bytes:
        chunks: list[dict] = []
        if self.family.has_blocks:
            if self.open is None:  # an empty answer still has its (empty) text block
                chunks += self._switch("text")
            chunks += self.family.close_block(self.block)
        metrics = invocation_metrics(input_tokens, output_tokens, latency_ms, first_byte_ms)
        stop = self.family.stop_words[reason]
        chunks += self.family.tail_chunks(stop, input_tokens, output_tokens, metrics)
        return b"".join(map(chunk_frame, chunks))

    def whole_body(
        self,
        text: str,
        reason: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: int,
        reasoning: Sequence[ReasoningBlock] = (),
    ) -> dict:
        stop = self.family.stop_words[reason]
        thought = "".join(b.text for b in reasoning)
        if thought and self.family.inline_reasoning == "inside":
            text = f"{thought}</think>\n\n{text}"
        elif thought and self.family.inline_reasoning == "tags":
            text = f"<reasoning>{thought}</reasoning>{text}"
        body = self.family.whole_body(text, stop, input_tokens, output_tokens, self.model_id)
        return self.family.whole_thinking(body, reasoning) if reasoning else body

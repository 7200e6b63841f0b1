"""Anthropic Claude's native Messages format on Bedrock (`anthropic_version: bedrock-2023-05-31`)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...errors import BadRequest
from ...events import EFFORT_BUDGET, Message, Params, ReasoningBlock, ReasoningDelta
from .common import (
    METRICS_KEY,
    Family,
    NativeChunk,
    RawRequest,
    by_reason,
    opt,
    read_fields,
    read_messages,
    signed,
    turn_messages,
)


def redacted_data(block: ReasoningBlock) -> str:
    """Redacted thinking as Anthropic's `data` string: the bytes we kept of it (ASCII), or base64 of
    bytes that came another way (Converse's blob)."""
    try:
        return block.redacted.decode("ascii")
    except UnicodeDecodeError:
        return base64.b64encode(block.redacted).decode()


def native_blocks(m: Message) -> list[dict]:
    """An Anthropic messages-API content list: signed thinking first, as the API wants it, then the text."""
    thought = [
        {"type": "redacted_thinking", "data": redacted_data(b)}
        if b.redacted
        else {"type": "thinking", "thinking": b.text, "signature": b.signature}
        for b in signed(m.reasoning)
    ]
    return [*thought, {"type": "text", "text": m.content}]


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of content blocks.")
    texts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise BadRequest(f"{where}[{i}]: only text blocks are supported, not {kind!r}.")
        texts.append(block["text"])
    return "".join(texts)


class Anthropic(Family):
    name = "anthropic"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("end_turn", "max_tokens", "stop_sequence", "end_turn", "end_turn")

    def thinking(self, base_id: str, params: Params) -> tuple[dict, Params]:
        """Extended thinking with a budget per effort. Claude counts thinking within max_tokens, so the
        budget is added to it (the answer keeps its own), and thinking refuses a changed temperature or
        top_p, so they are left to the model."""
        if not params.reasoning:
            return {}, params
        budget = EFFORT_BUDGET[params.reasoning]
        more = replace(params, max_tokens=params.max_tokens + budget, temperature=None, top_p=None)
        return {"thinking": {"type": "enabled", "budget_tokens": budget}}, more

    def reasoning_back(self, reasoning: Sequence[ReasoningBlock]) -> list[dict]:
        return [
            {"reasoningContent": {"redactedContent": b.redacted}}
            if b.redacted
            else {"reasoningContent": {"reasoningText": {"text": b.text, "signature": b.signature}}}
            for b in signed(reasoning)
        ]

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        p = params
        return opt(
            anthropic_version="bedrock-2023-05-31",
            max_tokens=p.max_tokens,
            messages=[{"role": m.role, "content": native_blocks(m)} for m in turn_messages(messages)],
            system=p.system.strip() or None,
            temperature=p.temperature,
            top_p=p.top_p,
            stop_sequences=list(p.stop),
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        kind = chunk.get("type")
        if kind == "message_start":
            return NativeChunk(input_tokens=(chunk.get("message", {}).get("usage") or {}).get("input_tokens"))
        if kind == "content_block_delta":
            delta = chunk.get("delta") or {}
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return NativeChunk(reasoning=ReasoningDelta(delta["thinking"]))
            if delta.get("type") == "signature_delta" and delta.get("signature"):
                return NativeChunk(reasoning=ReasoningDelta(signature=delta["signature"]))
            return NativeChunk(text=delta.get("text") or "")
        if kind == "content_block_start":
            # Redacted thinking is one whole block; its opaque `data` goes back as the same string.
            block = chunk.get("content_block") or {}
            if block.get("type") == "redacted_thinking" and block.get("data"):
                return NativeChunk(reasoning=ReasoningDelta(redacted=str(block["data"]).encode()))
            return NativeChunk()
        if kind == "message_delta":
            return NativeChunk(
                stop=(chunk.get("delta") or {}).get("stop_reason"),
                output_tokens=(chunk.get("usage") or {}).get("output_tokens"),
            )
        return NativeChunk(done=kind == "message_stop")

    def head_chunks(self, model_id: str, input_tokens: int) -> list[dict]:
        message: dict = {
            "id": "msg_bdrk_01",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        return [
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ]

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
            {"type": "message_stop", METRICS_KEY: metrics},
        ]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {
            "id": "msg_bdrk_01",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    def read_request(self, body: dict) -> RawRequest:
        messages = read_messages(body.get("messages"), _text)
        if body.get("max_tokens") is None:
            raise BadRequest("max_tokens is required in an Anthropic messages body.")
        return read_fields(
            messages, _text(body.get("system") or "", "system"), body, "max_tokens", stop="stop_sequences"
        )


FAMILY = Anthropic()

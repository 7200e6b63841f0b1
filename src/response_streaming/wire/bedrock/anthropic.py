"""Anthropic Claude's native Messages format on Bedrock (`anthropic_version: bedrock-2023-05-31`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...errors import BadRequest
from ...events import EFFORT_BUDGET, Message, Params, ReasoningBlock, ReasoningDelta
from . import converse
from .common import (
    METRICS_KEY,
    Family,
    NativeChunk,
    RawRequest,
    by_reason,
    opt,
    read_fields,
    read_messages,
    redacted_data,
    signed,
    turn_messages,
)


def thinking_blocks(reasoning: Sequence[ReasoningBlock]) -> list[dict]:
    return [
        {"type": "redacted_thinking", "data": redacted_data(b.redacted)}
        if b.redacted
        else {"type": "thinking", "thinking": b.text, "signature": b.signature}
        for b in reasoning
    ]


def native_blocks(m: Message) -> list[dict]:
    """An Anthropic messages-API content list: signed thinking first, as the API wants it, then the text."""
    return [*thinking_blocks(signed(m.reasoning)), {"type": "text", "text": m.content}]


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of content blocks.")
    texts = []
    for i, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"):
            continue  # read by `_thinking`
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise BadRequest(f"{where}[{i}]: only text blocks are supported, not {kind!r}.")
        texts.append(block["text"])
    return "".join(texts)


def _thinking(content: Any, where: str) -> tuple[ReasoningBlock, ...]:
    """An assistant turn's `thinking` / `redacted_thinking` blocks, kept exactly (the data string's bytes)."""
    out = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "thinking":
            out.append(ReasoningBlock(str(block.get("thinking") or ""), str(block.get("signature") or "")))
        elif isinstance(block, dict) and block.get("type") == "redacted_thinking":
            out.append(ReasoningBlock(redacted=str(block.get("data") or "").encode()))
    return tuple(out)


class Anthropic(Family):
    name = "anthropic"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("end_turn", "max_tokens", "stop_sequence", "end_turn", "end_turn")
    has_blocks = True

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
        return converse.history_blocks(signed(reasoning))

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
        return [{"type": "message_start", "message": message}]

    def open_block(self, kind: str, block: int, data: str = "") -> list[dict]:
        content: dict = {"type": kind, "data": data} if kind == "redacted_thinking" else {"type": kind, kind: ""}
        return [{"type": "content_block_start", "index": block, "content_block": content}]

    def close_block(self, block: int) -> list[dict]:
        return [{"type": "content_block_stop", "index": block}]

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}

    def thinking_chunk(self, thought: ReasoningDelta, block: int) -> dict | None:
        delta = (
            {"type": "signature_delta", "signature": thought.signature}
            if thought.signature
            else {"type": "thinking_delta", "thinking": thought.text}
        )
        return {"type": "content_block_delta", "index": block, "delta": delta}

    def whole_thinking(self, body: dict, reasoning: Sequence[ReasoningBlock]) -> dict:
        return {**body, "content": [*thinking_blocks(reasoning), *body["content"]]}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [
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
        messages = read_messages(body.get("messages"), _text, _thinking)
        if body.get("max_tokens") is None:
            raise BadRequest("max_tokens is required in an Anthropic messages body.")
        raw = read_fields(
            messages, _text(body.get("system") or "", "system"), body, "max_tokens", stop="stop_sequences"
        )
        return replace(raw, reasoning=converse.asked_effort({"thinking": body.get("thinking")}))


FAMILY = Anthropic()

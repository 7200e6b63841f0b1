"""The assistant message a generation writes when it ends: fresh text, or text appended to a cut answer.

Written in the same transaction as the generation's last chunk and status, by whichever process ends
it (the owner, or a replica that finds the owner dead), so this is data-driven: everything it needs
is in the `generations` row and the message itself.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ..events import ReasoningBlock, ReasoningDelta
from ..reasoning import blocks_of
from ..store import conversations, messages

if TYPE_CHECKING:
    from .log import Chunk


def join_continuation(before: str, after: str) -> str:
    """Append a continuation, with the space a model drops when it starts a new sentence or word.

    "adven" + "ture" stays one word; "It ended." + "Then" and "in the" + "Garden" get a space.
    """
    if not (before and after) or before[-1].isspace() or after[0].isspace():
        return before + after
    sentence = before[-1] in ".!?:;," and after[0].isalnum()
    word = before[-1].isalnum() and after[0].isupper()
    return before + " " + after if sentence or word else before + after


def merge_metrics(parts: list[dict]) -> dict:
    """One answer written in several requests (continue): tokens add up, the first wait counts."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    out = dict(parts[-1])
    out["ttft_ms"] = parts[0].get("ttft_ms")
    out["duration_ms"] = sum(p.get("duration_ms") or 0 for p in parts)
    out["output_tokens"] = sum(p.get("output_tokens") or 0 for p in parts)
    inputs = [p.get("input_tokens") for p in parts]
    out["input_tokens"] = None if any(i is None for i in inputs) else sum(inputs)
    return out


def reasoning_delta(chunk: Chunk) -> ReasoningDelta:
    """A `reasoning` chunk of the log as the event it was: its text, and the signature or (base64 in
    `data`) redacted bytes it carried, exactly."""
    redacted = chunk.data.get("redacted")
    return ReasoningDelta(
        chunk.text, chunk.data.get("signature") or "", base64.b64decode(redacted) if redacted else b""
    )


def reasoning_meta(chunks: Iterable[Chunk]) -> list[dict]:
    """The `reasoning` chunks of a generation -> the blocks its message keeps in `meta["reasoning"]`
    (`{"text", "signature"?, "redacted"?: base64}`, in order; see `reasoning_blocks` for the way back)."""
    out = []
    for block in blocks_of(map(reasoning_delta, chunks)):
        item: dict = {"text": block.text}
        if block.signature:
            item["signature"] = block.signature
        if block.redacted:
            item["redacted"] = base64.b64encode(block.redacted).decode()
        out.append(item)
    return out


def reasoning_blocks(meta: dict) -> tuple[ReasoningBlock, ...]:
    """A message's stored thinking (`meta["reasoning"]`) as the blocks a provider gets back, byte for byte."""
    return tuple(
        ReasoningBlock(
            b.get("text") or "", b.get("signature") or "", base64.b64decode(b["redacted"]) if b.get("redacted") else b""
        )
        for b in meta.get("reasoning") or []
    )


def write_answer(
    conn: Connection,
    message_id: int,
    continues: bool,
    text: str,
    status: str,
    error: str,
    metrics: dict,
    reasoning: list[dict] | None = None,
) -> None:
    """Rewrite the message once, at the end. A message deleted meanwhile (its conversation was) is skipped.
    `reasoning` (`reasoning_meta`) is kept in `meta["reasoning"]`, after any the message had (a continuation)."""
    row = conn.execute(
        select(messages.c.content, messages.c.meta, messages.c.conversation_id).where(messages.c.id == message_id)
    ).first()
    if row is None:
        return
    meta = dict(row.meta or {})
    if continues:
        meta["parts"] = list(meta.get("parts") or [meta.get("metrics", {})]) + [metrics]
        meta["metrics"] = merge_metrics(meta["parts"])
        text = join_continuation(row.content, text)
    else:
        meta["metrics"] = metrics
    if reasoning:
        meta["reasoning"] = list(meta.get("reasoning") or []) + reasoning if continues else reasoning
    conn.execute(
        update(messages).where(messages.c.id == message_id).values(content=text, status=status, error=error, meta=meta)
    )
    conn.execute(
        update(conversations).where(conversations.c.id == row.conversation_id).values(updated_at=datetime.now(UTC))
    )

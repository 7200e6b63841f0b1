"""ConverseStream and Converse: one format for every model. Both directions, pure.

Client side: `request` (keyword arguments for boto3's `converse_stream`) and `events` (what boto3
yields -> our events). Server side: `read_request`, `ConverseEncoder` (the stream's frames, used by
`serve` and by the tests' fake Bedrock alike) and `whole_body`. A stream is one event-stream frame
per event: messageStart · contentBlockDelta* · contentBlockStop · messageStop · metadata.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ...errors import BadRequest
from ...events import Event, Finish, Message, Params, ReasoningBlock, ReasoningDelta, StopReason, TextDelta, Usage
from ..eventstream import event_frame
from .common import Family, RawRequest, base_model_id, effort_asked, normalise_stop, read_messages, turn_messages
from .frames import pad

# ---------------------------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------------------------


def request(model_id: str, messages: Sequence[Message], params: Params, family: Family | None = None) -> dict:
    """Keyword arguments for `client.converse_stream(...)`.

    `family` (the model's native format, when we know it) decides what reasoning asks for and what of
    an earlier turn's reasoning goes back: Claude's signed thinking, first in its turn; nothing else.
    """
    fields, params = family.thinking(base_model_id(model_id), params) if family else ({}, params)
    config: dict = {"maxTokens": params.max_tokens}
    if params.temperature is not None:
        config["temperature"] = params.temperature
    if params.top_p is not None:
        config["topP"] = params.top_p
    if params.stop:
        config["stopSequences"] = list(params.stop)
    req = {
        "modelId": model_id,
        "messages": [
            {"role": m.role, "content": [*(family.reasoning_back(m.reasoning) if family else ()), {"text": m.content}]}
            for m in turn_messages(messages)
        ],
        "inferenceConfig": config,
    }
    if fields:
        req["additionalModelRequestFields"] = fields
    if params.system.strip():
        req["system"] = [{"text": params.system.strip()}]
    return req


def events(raw: Iterable[dict]) -> Iterator[Event]:
    """ConverseStream events (as boto3 yields them) -> our events.

    Text and reasoning are passed on at once (a reasoning block has no start event: its deltas
    simply come first, at their own index); usage and latency come from `metadata`, the stop reason from
    `messageStop`. `Usage` and `Finish` are sent when the stream ends, and only if `messageStop`
    came: without it the answer is incomplete.
    """
    reason: StopReason | None = None
    usage: Usage | None = None
    latency: int | None = None
    for event in raw:
        if "contentBlockDelta" in event:
            delta = event["contentBlockDelta"].get("delta", {})
            if delta.get("text"):
                yield TextDelta(delta["text"])
            elif thought := reasoning_delta(delta.get("reasoningContent")):
                yield thought
        elif "messageStop" in event:
            reason = normalise_stop(event["messageStop"].get("stopReason"))
        elif "metadata" in event:
            u = event["metadata"].get("usage") or {}
            usage = Usage(int(u.get("inputTokens", 0)), int(u.get("outputTokens", 0)))
            latency = (event["metadata"].get("metrics") or {}).get("latencyMs")
    if reason is None:
        return
    if usage is not None:
        yield usage
    yield Finish(reason, latency_ms=latency)


def _signature(b: ReasoningBlock) -> dict:
    return {"signature": b.signature} if b.signature else {}


def history_blocks(reasoning: Sequence[ReasoningBlock], b64: bool = False) -> list[dict]:
    """Reasoning as Converse content blocks (`reasoningText` with its signature, or `redactedContent`), as a
    whole answer carries them and as Claude takes them back. Bytes stay bytes for boto3 (it encodes
    blobs itself); `b64` writes them as the JSON on the wire has them."""
    return [
        {"reasoningContent": {"redactedContent": base64.b64encode(b.redacted).decode() if b64 else b.redacted}}
        if b.redacted
        else {"reasoningContent": {"reasoningText": {"text": b.text, **_signature(b)}}}
        for b in reasoning
    ]


def reasoning_delta(rc: Any) -> ReasoningDelta | None:
    """A `reasoningContent` delta -> ours: `{"text"}`, `{"signature"}` or `{"redactedContent": bytes}`."""
    if not isinstance(rc, dict):
        return None
    thought = ReasoningDelta(rc.get("text") or "", rc.get("signature") or "", bytes(rc.get("redactedContent") or b""))
    return thought if thought.text or thought.signature or thought.redacted else None


# ---------------------------------------------------------------------------------------------
# Server side
# ---------------------------------------------------------------------------------------------


def blocks_text(blocks: Any, where: str) -> str:
    """Converse content blocks: text is served; cache points are hints and thinking (`reasoningContent`,
    read by `blocks_reasoning`) is not text: both are skipped here."""
    if not isinstance(blocks, list):
        raise BadRequest(f"{where} must be a list of content blocks.")
    texts = []
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block, dict) and ("cachePoint" in block or "reasoningContent" in block):
            continue
        else:
            kind = next(iter(block), "?") if isinstance(block, dict) and block else type(block).__name__
            raise BadRequest(f"{where}[{i}]: only text content is supported, not {kind!r}.")
    return "".join(texts)


def blocks_reasoning(blocks: Any, where: str) -> tuple[ReasoningBlock, ...]:
    """The `reasoningContent` blocks of an assistant turn: `reasoningText {text, signature}` or
    `redactedContent` (base64 in the JSON), kept byte for byte."""
    out = []
    for i, block in enumerate(blocks if isinstance(blocks, list) else []):
        rc = block.get("reasoningContent") if isinstance(block, dict) else None
        if rc is None:
            continue
        text = rc.get("reasoningText") if isinstance(rc, dict) else None
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            out.append(ReasoningBlock(text["text"], str(text.get("signature") or "")))
        elif isinstance(rc, dict) and isinstance(rc.get("redactedContent"), str):
            try:
                out.append(ReasoningBlock(redacted=base64.b64decode(rc["redactedContent"], validate=True)))
            except ValueError as err:
                raise BadRequest(f"{where}[{i}].reasoningContent.redactedContent must be base64.") from err
        else:
            raise BadRequest(
                f"{where}[{i}].reasoningContent needs reasoningText {{text, signature}} or redactedContent."
            )
    return tuple(out)


def asked_effort(fields: Any) -> str | None:
    """What `additionalModelRequestFields` asks of thinking, in any family's words: Claude's `thinking`
    (a budget, or `adaptive` with an effort), Nova 2's `reasoningConfig`, gpt-oss's `reasoning_effort`."""
    if not isinstance(fields, dict):
        return None
    where = "additionalModelRequestFields"
    thinking = fields.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return ""
        if thinking.get("budget_tokens") is not None:
            return effort_asked(thinking["budget_tokens"], f"{where}.thinking.budget_tokens")
        return effort_asked(thinking.get("effort") or "medium", f"{where}.thinking.effort")
    config = fields.get("reasoningConfig")
    if isinstance(config, dict):
        if config.get("type") == "disabled":
            return ""
        return effort_asked(config.get("maxReasoningEffort") or "medium", f"{where}.reasoningConfig.maxReasoningEffort")
    return effort_asked(fields.get("reasoning_effort"), f"{where}.reasoning_effort")


def read_request(body: dict) -> RawRequest:
    """A Converse / ConverseStream body (a JSON object) -> messages and raw parameters."""
    if body.get("toolConfig"):
        raise BadRequest("toolConfig is not supported by this server: tool use is not available.")
    messages = read_messages(body.get("messages"), blocks_text, blocks_reasoning)
    system = blocks_text(body.get("system") or [], "system")
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise BadRequest("inferenceConfig must be an object.")
    return RawRequest(
        messages,
        system,
        config.get("maxTokens"),
        config.get("temperature"),
        config.get("topP"),
        config.get("stopSequences"),
        prefix="inferenceConfig.",
        stop_name="inferenceConfig.stopSequences",
        reasoning=asked_effort(body.get("additionalModelRequestFields")),
    )


def _stop_word(reason: str) -> str:
    # Our StopReason words are Bedrock's, except "other", which is sent as "end_turn".
    return "end_turn" if reason == "other" else reason


class ConverseEncoder:
    """The frames of one ConverseStream answer, piece by piece (see `frames.encode` for a whole stream).

    Thinking comes first, as Bedrock sends it: `reasoningContent` deltas (text, then the signature)
    at their block's index with no start event, `contentBlockStop`, then the answer at the next
    index. Redacted thinking is a block of its own. An answer without thinking is block 0, as before.
    """

    headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.block = 0
        self.open: str | None = None  # "reasoning" or "text" while a block is open

    def _switch(self, kind: str) -> bytes:
        """Close the open block if it is of another kind (or was signed), and open `kind` at the next index."""
        if self.open == kind:
            return b""
        out = b""
        if self.open is not None:
            out = event_frame("contentBlockStop", pad({"contentBlockIndex": self.block}, 1))
            self.block += 1
        self.open = kind
        return out

    def _delta(self, delta: dict, n: int) -> bytes:
        return event_frame("contentBlockDelta", pad({"contentBlockIndex": self.block, "delta": delta}, n))

    def start(self) -> bytes:
        return event_frame("messageStart", pad({"role": "assistant"}, 0))

    def piece(self, text: str) -> bytes:
        """A `contentBlockDelta` frame: `{"contentBlockIndex": i, "delta": {"text": ...}}`."""
        if not text:
            return b""
        return self._switch("text") + self._delta({"text": text}, len(text))

    def reasoning(self, thought: ReasoningDelta) -> bytes:
        """`reasoningContent` deltas: `{"text"}`, `{"signature"}` (ends its block), `{"redactedContent"}` (base64)."""
        out = b""
        if thought.redacted:
            out += self._switch("redacted")
            blob = base64.b64encode(thought.redacted).decode()
            out += self._delta({"reasoningContent": {"redactedContent": blob}}, len(blob))
            self.open = "reasoning-done"  # a redacted block holds nothing else
        if thought.text:
            text = {"reasoningContent": {"text": thought.text}}
            out += self._switch("reasoning") + self._delta(text, len(thought.text))
        if thought.signature:
            out += self._switch("reasoning") + self._delta({"reasoningContent": {"signature": thought.signature}}, 1)
            self.open = "reasoning-done"  # Claude signs a block at its end: more thinking is a new block
        return out

    def end(self, reason: str, input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> bytes:
        """contentBlockStop + messageStop (`reason`: our StopReason word) + metadata with usage and latency."""
        usage = {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        }
        return (
            event_frame("contentBlockStop", pad({"contentBlockIndex": self.block}, 1))
            + event_frame("messageStop", pad({"stopReason": _stop_word(reason)}, 2))
            + event_frame("metadata", pad({"usage": usage, "metrics": {"latencyMs": latency_ms}}, 3))
        )

    def whole_body(
        self,
        text: str,
        reason: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: int,
        reasoning: Sequence[ReasoningBlock] = (),
    ) -> dict:
        """A Converse response body: output message (thinking blocks first), `stopReason`, `usage`, `metrics`."""
        return {
            "output": {
                "message": {"role": "assistant", "content": [*history_blocks(reasoning, b64=True), {"text": text}]}
            },
            "stopReason": _stop_word(reason),
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": latency_ms},
        }

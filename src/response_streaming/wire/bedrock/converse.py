"""ConverseStream and Converse: one format for every model. Both directions, pure.

Client side: `request` (keyword arguments for boto3's `converse_stream`) and `events` (what boto3
yields -> our events). Server side: `read_request`, `ConverseEncoder` (the stream's frames, used by
`serve` and by the tests' fake Bedrock alike) and `whole_body`. A stream is one event-stream frame
per event: messageStart · contentBlockDelta* · contentBlockStop · messageStop · metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ...errors import BadRequest
from ...events import Event, Finish, Message, Params, ReasoningDelta, StopReason, TextDelta, Usage
from ..eventstream import event_frame
from .common import Family, RawRequest, base_model_id, normalise_stop, read_messages, turn_messages
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
    """Converse content blocks: text is served; cache points are hints and are skipped."""
    if not isinstance(blocks, list):
        raise BadRequest(f"{where} must be a list of content blocks.")
    texts = []
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block, dict) and "cachePoint" in block:
            continue
        else:
            kind = next(iter(block), "?") if isinstance(block, dict) and block else type(block).__name__
            raise BadRequest(f"{where}[{i}]: only text content is supported, not {kind!r}.")
    return "".join(texts)


def read_request(body: dict) -> RawRequest:
    """A Converse / ConverseStream body (a JSON object) -> messages and raw parameters."""
    if body.get("toolConfig"):
        raise BadRequest("toolConfig is not supported by this server: tool use is not available.")
    messages = read_messages(body.get("messages"), blocks_text)
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
    )


def _stop_word(reason: str) -> str:
    # Our StopReason words are Bedrock's, except "other", which is sent as "end_turn".
    return "end_turn" if reason == "other" else reason


class ConverseEncoder:
    """The frames of one ConverseStream answer, piece by piece (see `frames.encode` for a whole stream)."""

    headers: dict[str, str] = {}

    def start(self) -> bytes:
        return event_frame("messageStart", pad({"role": "assistant"}, 0))

    def piece(self, text: str) -> bytes:
        """A `contentBlockDelta` frame: `{"contentBlockIndex": 0, "delta": {"text": ...}}`."""
        if not text:
            return b""
        return event_frame("contentBlockDelta", pad({"contentBlockIndex": 0, "delta": {"text": text}}, len(text)))

    def end(self, reason: str, input_tokens: int, output_tokens: int, latency_ms: int, first_byte_ms: int) -> bytes:
        """contentBlockStop + messageStop (`reason`: our StopReason word) + metadata with usage and latency."""
        usage = {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        }
        return (
            event_frame("contentBlockStop", pad({"contentBlockIndex": 0}, 1))
            + event_frame("messageStop", pad({"stopReason": _stop_word(reason)}, 2))
            + event_frame("metadata", pad({"usage": usage, "metrics": {"latencyMs": latency_ms}}, 3))
        )

    def whole_body(self, text: str, reason: str, input_tokens: int, output_tokens: int, latency_ms: int) -> dict:
        """A Converse response body: output message, `stopReason`, `usage`, `metrics`."""
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": _stop_word(reason),
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": latency_ms},
        }

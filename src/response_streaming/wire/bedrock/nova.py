"""Amazon Nova's native format: Converse's shapes (messages-v1), with snake_case inference names."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import BadRequest
from ...events import Message, Params
from . import converse
from .common import METRICS_KEY, Family, NativeChunk, RawRequest, by_reason, opt, turns


class Nova(Family):
    name = "nova"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("end_turn", "max_tokens", "stop_sequence", "content_filtered", "end_turn")

    def matches(self, base_id: str) -> bool:
        return base_id.startswith("amazon.nova")

    def thinking(self, base_id: str, params: Params) -> tuple[dict, Params]:
        # Nova 2 models reason on request; Nova 1 models can't.
        if not params.reasoning or not base_id.startswith("amazon.nova-2"):
            return {}, params
        return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": params.reasoning}}, params

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        p = params
        return opt(
            schemaVersion="messages-v1",
            messages=[{"role": r, "content": [{"text": t}]} for r, t in turns(messages)],
            system=[{"text": p.system.strip()}] if p.system.strip() else None,
            inferenceConfig=opt(
                max_new_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, stopSequences=list(p.stop)
            ),
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        if "contentBlockDelta" in chunk:
            return NativeChunk(text=(chunk["contentBlockDelta"].get("delta") or {}).get("text") or "")
        if "messageStop" in chunk:
            return NativeChunk(stop=chunk["messageStop"].get("stopReason"), done=True)
        if "metadata" in chunk:
            u = chunk["metadata"].get("usage") or {}
            return NativeChunk(input_tokens=u.get("inputTokens"), output_tokens=u.get("outputTokens"))
        return NativeChunk()

    def head_chunks(self, model_id: str, input_tokens: int) -> list[dict]:
        return [{"messageStart": {"role": "assistant"}}]

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": stop}},
            {"metadata": {"usage": {"inputTokens": input_tokens, "outputTokens": output_tokens}}, METRICS_KEY: metrics},
        ]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
        }

    def read_request(self, body: dict) -> RawRequest:
        config = body.get("inferenceConfig") or {}
        if not isinstance(config, dict):
            raise BadRequest("inferenceConfig must be an object.")
        renamed = {{"max_new_tokens": "maxTokens", "top_p": "topP"}.get(k, k): v for k, v in config.items()}
        extra = (
            {"additionalModelRequestFields": {"reasoningConfig": body["reasoningConfig"]}}
            if body.get("reasoningConfig")
            else {}
        )
        return converse.read_request({**body, "inferenceConfig": renamed, **extra})


FAMILY = Nova()

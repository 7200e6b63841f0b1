"""Cohere Command's legacy `/generate` streaming format (Bedrock retired the model; kept for old apps)."""

from __future__ import annotations

from collections.abc import Sequence

from ...events import Message, Params
from .common import (
    METRICS_KEY,
    Family,
    NativeChunk,
    RawRequest,
    by_reason,
    opt,
    prompt_request,
    read_fields,
    transcript,
)


class Cohere(Family):
    name = "cohere"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("COMPLETE", "MAX_TOKENS", "COMPLETE", "ERROR_TOXIC", "COMPLETE")

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        p = params
        return opt(
            prompt=transcript(messages, p.system, "User", "Chatbot"),
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            p=p.top_p,
            stop_sequences=list(p.stop),
            stream=True,
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        # Legacy Command: {"text", "is_finished"}; Command R adds "event_type" with the same keys.
        finished = bool(chunk.get("is_finished"))
        return NativeChunk(
            text="" if finished else chunk.get("text") or "", stop=chunk.get("finish_reason"), done=finished
        )

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"text": text, "is_finished": False}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [{"is_finished": True, "finish_reason": stop, METRICS_KEY: metrics}]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {
            "id": "00000000-0000-0000-0000-000000000000",
            "generations": [{"id": "00000000-0000-0000-0000-000000000001", "text": text, "finish_reason": stop}],
        }

    def read_request(self, body: dict) -> RawRequest:
        messages, system = prompt_request(self.name, body)
        return read_fields(messages, system, body, "max_tokens", top_p="p", stop="stop_sequences")


FAMILY = Cohere()

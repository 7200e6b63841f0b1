"""Amazon Titan Text's native format: a `User:/Bot:` transcript in `inputText`."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import BadRequest
from ...events import Message, Params
from .common import (
    METRICS_KEY,
    Family,
    NativeChunk,
    RawRequest,
    by_reason,
    opt,
    prompt_to_messages,
    read_fields,
    transcript,
)


class Titan(Family):
    name = "titan"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("FINISH", "LENGTH", "STOP_CRITERIA_MET", "CONTENT_FILTERED", "FINISH")

    def matches(self, base_id: str) -> bool:
        return base_id.startswith(("amazon.titan-text", "amazon.titan-tg1"))

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        p = params
        return {
            "inputText": transcript(messages, p.system, "User", "Bot"),
            "textGenerationConfig": opt(
                maxTokenCount=p.max_tokens, temperature=p.temperature, topP=p.top_p, stopSequences=list(p.stop)
            ),
        }

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        stop = chunk.get("completionReason")
        return NativeChunk(
            text=chunk.get("outputText") or "",
            stop=stop,
            input_tokens=chunk.get("inputTextTokenCount"),
            output_tokens=chunk.get("totalOutputTextTokenCount"),
            done=stop is not None,
        )

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {
            "outputText": text,
            "index": 0,
            "totalOutputTextTokenCount": index + 1,
            "completionReason": None,
            "inputTextTokenCount": input_tokens if index == 0 else None,
        }

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [
            {
                "outputText": "",
                "index": 0,
                "totalOutputTextTokenCount": output_tokens,
                "completionReason": stop,
                "inputTextTokenCount": None,
                METRICS_KEY: metrics,
            }
        ]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {
            "inputTextTokenCount": input_tokens,
            "results": [{"tokenCount": output_tokens, "outputText": text, "completionReason": stop}],
        }

    def read_request(self, body: dict) -> RawRequest:
        text, config = body.get("inputText"), body.get("textGenerationConfig") or {}
        if not isinstance(text, str) or not isinstance(config, dict):
            raise BadRequest("A Titan body needs inputText (a string) and optionally textGenerationConfig (an object).")
        messages, system = prompt_to_messages(text)
        return read_fields(messages, system, config, "maxTokenCount", "topP", "stopSequences", "textGenerationConfig.")


FAMILY = Titan()

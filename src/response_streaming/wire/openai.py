"""OpenAI's chat-completion shapes, encoding side: chunks framed as SSE, whole completions, errors.

OpenAI streams every chunk as a bare `data: {json}` event and ends with `data: [DONE]`. Pure: dicts
and bytes out. Decoding is left to real clients (the `openai` package's own decoder in our tests).
"""

from __future__ import annotations

import secrets
import time

from .sse import sse_json

DONE = b"data: [DONE]\n\n"

# Our stop reasons (events.StopReason) in OpenAI's words.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "content_filtered": "content_filter",
    "other": "stop",
}

# HTTP status -> OpenAI's error `type` (what their API sends for the same status).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "other", "stop")


def openai_usage(input_tokens: int | None, output_tokens: int | None) -> dict:
    i, o = input_tokens or 0, output_tokens or 0
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


class ChunkEncoder:
    """The `chat.completion.chunk` objects of one streamed completion, already framed as SSE.

    Every chunk carries the same id, creation time and model, as OpenAI's do. With
    `include_usage`, every chunk has `"usage": null` and one last chunk with no choices carries it.
    """

    def __init__(self, model: str, include_usage: bool = False, cid: str | None = None, created: int | None = None):
        self.model = model
        self.include_usage = include_usage
        self.id = cid or completion_id()
        self.created = int(time.time()) if created is None else created

    def _chunk(self, choices: list, **extra) -> bytes:
        obj = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            obj["usage"] = None
        obj.update(extra)
        return sse_json(obj)

    def _choice(self, delta: dict, finish: str | None = None) -> dict:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def start(self) -> bytes:
        """The first chunk names the role, with empty content (as OpenAI sends it)."""
        return self._chunk([self._choice({"role": "assistant", "content": ""})])

    def delta(self, text: str) -> bytes:
        return self._chunk([self._choice({"content": text})])

    def reasoning(self, text: str) -> bytes:
        """Thinking as DeepSeek, vLLM and llama.cpp's server stream it: `reasoning_content`, `content: null`."""
        return self._chunk([self._choice({"content": None, "reasoning_content": text})]) if text else b""

    def finish(
        self, stop_reason: str | None, input_tokens: int | None = None, output_tokens: int | None = None
    ) -> bytes:
        """The closing chunk(s) and `[DONE]`: only for an answer that really ended."""
        out = self._chunk([self._choice({}, finish_reason(stop_reason))])
        if self.include_usage:
            out += self._chunk([], usage=openai_usage(input_tokens, output_tokens))
        return out + DONE

    def error(self, message: str, status: int, code: str | None = None) -> bytes:
        """A mid-stream failure, as OpenAI streams it: `data: {"error": {...}}`, and deliberately no
        `[DONE]`. `[DONE]` means "the answer is complete"; leaving it out lets any client that checks
        for it see a truncated answer, and the `openai` package raises `APIError` on this event."""
        return sse_json(error_body(message, status, code))


def error_body(message: str, status: int, code: str | None = None) -> dict:
    """OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`."""
    etype = ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def completion(
    model: str,
    text: str,
    stop_reason: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cid: str | None = None,
    created: int | None = None,
    reasoning: str = "",
) -> dict:
    """A whole (non-streamed) `chat.completion` object; thinking, if any, in `message.reasoning_content`."""
    message: dict = {"role": "assistant", "content": text, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": cid or completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(stop_reason),
            }
        ],
        "usage": openai_usage(input_tokens, output_tokens),
    }


def models_list(model_ids: list[str]) -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "response-streaming"} for m in model_ids],
    }

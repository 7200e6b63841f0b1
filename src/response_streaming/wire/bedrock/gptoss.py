"""OpenAI's gpt-oss on Bedrock (`openai.gpt-oss-*`): an OpenAI chat-completions body and chunks.

Bedrock's native gpt-oss stream writes its thinking into the text as `<reasoning>…</reasoning>`
before the answer (`inline_reasoning = "tags"`: the provider splits it); a `reasoning_content`
delta, where one comes, is read too. The effort is the body's `reasoning_effort`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import BadRequest
from ...events import Message, Params, ReasoningDelta
from .common import METRICS_KEY, Family, NativeChunk, RawRequest, by_reason, effort_asked, opt, read_messages, turns


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise BadRequest(f"{where} must be a string or a list of text parts.")


class GptOss(Family):
    name = "openai"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("stop", "length", "stop", "content_filter", "stop")
    inline_reasoning = "tags"

    def thinking(self, base_id: str, params: Params) -> tuple[dict, Params]:
        return ({"reasoning_effort": params.reasoning} if params.reasoning else {}), params

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        p = params
        msgs = [{"role": "system", "content": p.system.strip()}] if p.system.strip() else []
        msgs += [{"role": r, "content": t} for r, t in turns(messages)]  # reasoning is not sent back
        return opt(
            messages=msgs,
            max_completion_tokens=p.max_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            stop=list(p.stop),
            reasoning_effort=p.reasoning or None,
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        out = (chunk.get("choices") or [{}])[0]
        delta = out.get("delta") or out.get("message") or {}
        stop = out.get("finish_reason")
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        usage = chunk.get("usage") or {}
        return NativeChunk(
            text=delta.get("content") or "",
            reasoning=ReasoningDelta(thought) if isinstance(thought, str) and thought else None,
            stop=stop,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            done=stop is not None,
        )

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": stop}],
                "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens},
                METRICS_KEY: metrics,
            }
        ]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {
            "object": "chat.completion",
            "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": stop}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens},
        }

    def read_request(self, body: dict) -> RawRequest:
        raw = body.get("messages")
        if not isinstance(raw, list):
            raise BadRequest("messages must be a non-empty list.")
        system = [_text(m.get("content"), "system") for m in raw if isinstance(m, dict) and m.get("role") == "system"]
        chat = [m for m in raw if not (isinstance(m, dict) and m.get("role") == "system")]
        key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        return RawRequest(
            read_messages(chat, _text),
            "\n\n".join(system),
            body.get(key),
            body.get("temperature"),
            body.get("top_p"),
            body.get("stop"),
            stop_name="stop",
            reasoning=effort_asked(body.get("reasoning_effort"), "reasoning_effort"),
        )


FAMILY = GptOss()

"""Meta Llama's native format on Bedrock: a Llama 3 chat-template prompt; no stop sequences."""

from __future__ import annotations

from collections.abc import Sequence

from ...events import Message, Params
from .common import METRICS_KEY, Family, NativeChunk, RawRequest, by_reason, opt, prompt_request, read_fields, turns


def llama3_prompt(messages: Sequence[Message], system: str) -> str:
    parts = ["<|begin_of_text|>"]
    if system.strip():
        parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system.strip()}<|eot_id|>")
    parts += [f"<|start_header_id|>{r}<|end_header_id|>\n\n{t}<|eot_id|>" for r, t in turns(messages)]
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


class Meta(Family):
    name = "meta"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("stop", "length", "stop", "stop", "stop")

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        return opt(
            prompt=llama3_prompt(messages, params.system),
            max_gen_len=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        return NativeChunk(
            text=chunk.get("generation") or "",
            stop=chunk.get("stop_reason"),
            input_tokens=chunk.get("prompt_token_count"),
            output_tokens=chunk.get("generation_token_count"),
            done=chunk.get("stop_reason") is not None,
        )

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {
            "generation": text,
            "prompt_token_count": input_tokens if index == 0 else None,
            "generation_token_count": index + 1,
            "stop_reason": None,
        }

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [
            {
                "generation": "",
                "prompt_token_count": None,
                "generation_token_count": output_tokens,
                "stop_reason": stop,
                METRICS_KEY: metrics,
            }
        ]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {
            "generation": text,
            "prompt_token_count": input_tokens,
            "generation_token_count": output_tokens,
            "stop_reason": stop,
        }

    def read_request(self, body: dict) -> RawRequest:
        messages, system = prompt_request(self.name, body)
        return read_fields(messages, system, body, "max_gen_len")


FAMILY = Meta()

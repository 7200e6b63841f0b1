"""Mistral's native format on Bedrock: an `[INST]` prompt; text models answer in `outputs`, chat ones in `choices`."""

from __future__ import annotations

from collections.abc import Sequence

from ...events import Message, Params
from .common import METRICS_KEY, Family, NativeChunk, RawRequest, by_reason, opt, prompt_request, read_fields, turns


def mistral_prompt(messages: Sequence[Message], system: str) -> str:
    out, sys_text = "<s>", system.strip()
    for r, t in turns(messages):
        if r == "user":
            out += f"[INST] {sys_text + chr(10) * 2 if sys_text else ''}{t} [/INST]"
            sys_text = ""  # Mistral has no system role: it goes in front of the first instruction
        else:
            out += f" {t}</s>"
    return out


class Mistral(Family):
    name = "mistral"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("stop", "length", "stop", "stop", "stop")

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        return opt(
            prompt=mistral_prompt(messages, params.system),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop),
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        # Text models send {"outputs": [...]}; chat-style ones (Mistral Large 24.07) {"choices": [...]}.
        if chunk.get("outputs"):
            out = chunk["outputs"][0]
            text, stop = out.get("text") or "", out.get("stop_reason")
        elif chunk.get("choices"):
            out = chunk["choices"][0]
            text = (out.get("message") or out.get("delta") or {}).get("content") or ""
            stop = out.get("stop_reason") or out.get("finish_reason")
        else:
            text, stop = "", None
        return NativeChunk(text=text, stop=stop, done=stop is not None)

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"outputs": [{"text": text, "stop_reason": None}]}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [{"outputs": [{"text": "", "stop_reason": stop}], METRICS_KEY: metrics}]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {"outputs": [{"text": text, "stop_reason": stop}]}

    def read_request(self, body: dict) -> RawRequest:
        messages, system = prompt_request(self.name, body)
        return read_fields(messages, system, body, "max_tokens", stop="stop")


FAMILY = Mistral()

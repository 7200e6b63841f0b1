"""DeepSeek-R1's native format on Bedrock: a templated `prompt`; answers in `choices[].text`.

R1 always thinks, and its native stream starts *inside* the thought: the template ends the prompt
with `<think>`, so the text runs "…thinking…</think>\n\nanswer" (`inline_reasoning = "inside"`: the
provider splits it). Earlier turns go back as their answers alone: DeepSeek asks that reasoning not
be sent back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...errors import BadRequest
from ...events import Message, Params
from .common import METRICS_KEY, Family, NativeChunk, RawRequest, by_reason, opt, read_fields, turns

BOS, USER, ASSISTANT, EOS = "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"
_ROLE = f"{re.escape(USER)}|{re.escape(ASSISTANT)}"
_TURN = re.compile(f"({_ROLE})(.*?)(?={_ROLE}|$)", re.S)


def r1_prompt(messages: Sequence[Message], system: str) -> str:
    """DeepSeek's chat template, as AWS documents it for R1 on Bedrock, opening the thought."""
    out = BOS + system.strip()
    for r, t in turns(messages):
        out += f"{USER}{t}" if r == "user" else f"{ASSISTANT}{t}{EOS}"
    return out + f"{ASSISTANT}<think>\n"


def read_r1_prompt(prompt: str) -> tuple[list[Message], str]:
    """A prompt in R1's template -> (messages, system); a prompt without it is one user message."""
    body = prompt.removeprefix(BOS)
    if USER not in body:
        return [Message("user", prompt.strip())], ""
    system, _, rest = body.partition(USER)
    messages = []
    for tag, text in _TURN.findall(USER + rest):
        text = text.replace(EOS, "").strip()
        if tag == ASSISTANT:
            text = text.removeprefix("<think>").strip()
        if text:
            messages.append(Message("user" if tag == USER else "assistant", text))
    return messages, system.strip()


class DeepSeek(Family):
    name = "deepseek"
    # ours: end_turn, max_tokens, stop_sequence, content_filtered, other
    stop_words = by_reason("stop", "length", "stop", "stop", "stop")
    inline_reasoning = "inside"

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        # R1 always reasons: `params.reasoning` has nothing to switch.
        return opt(
            prompt=r1_prompt(messages, params.system),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop),
        )

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        out = (chunk.get("choices") or [{}])[0]
        stop = out.get("stop_reason") or out.get("finish_reason")
        return NativeChunk(text=out.get("text") or "", stop=stop, done=stop is not None)

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        return {"choices": [{"text": text, "stop_reason": None}]}

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        return [{"choices": [{"text": "", "stop_reason": stop}], METRICS_KEY: metrics}]

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        return {"choices": [{"text": text, "stop_reason": stop}]}

    def read_request(self, body: dict) -> RawRequest:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise BadRequest("A deepseek body needs a prompt string.")
        messages, system = read_r1_prompt(prompt)
        return read_fields(messages, system, body, "max_tokens", stop="stop")


FAMILY = DeepSeek()

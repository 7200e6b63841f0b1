"""What every Bedrock format shares: model ids, turns, stop words, and the `Family` every native format is.

A family is one object that knows its model ids, its request body, its chunks and whole bodies (both
ways: our client reads them, our server writes them) and how its request body reads back on the
server. Each lives in its own module; `families.FAMILIES` is the table of them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import BadRequest
from ...events import EFFORTS, Message, Params, ReasoningBlock, ReasoningDelta, StopReason, effort_of_budget

# Geography prefixes of system-defined cross-region inference profiles.
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")


def base_model_id(model_id: str) -> str:
    """The bare model id: without an ARN wrapper or a cross-region profile prefix.

    `arn:aws:bedrock:<region>:<account>:inference-profile/us.anthropic...` and `...:foundation-model/<id>`
    both end in the id; a profile id (`us.amazon.nova-lite-v1:0`) loses its geography.
    """
    mid = model_id.strip()
    if mid.startswith("arn:"):
        mid = mid.rsplit("/", 1)[-1]
    for prefix in PROFILE_PREFIXES:
        if mid.startswith(prefix):
            return mid[len(prefix) :]
    return mid


# ---------------------------------------------------------------------------------------------
# Requests: our messages -> the turns Bedrock accepts; request bodies -> our messages
# ---------------------------------------------------------------------------------------------


def turn_messages(messages: Sequence[Message]) -> list[Message]:
    """The turns Bedrock accepts: starting with the user, alternating, ending with the user.

    The history may hold two user turns in a row (an answer that failed with no text is not kept):
    they are joined, because Converse rejects consecutive turns of one role. An assistant turn keeps
    its reasoning (joined turns keep all of it, in order); each family decides what of it goes back.
    """
    out: list[Message] = []
    for m in messages:
        text = m.content.strip()
        if not text or (not out and m.role != "user"):
            continue
        if out and out[-1].role == m.role:
            out[-1] = Message(m.role, out[-1].content + "\n\n" + text, out[-1].reasoning + m.reasoning)
        else:
            out.append(Message(m.role, text, m.reasoning))
    while out and out[-1].role != "user":
        out.pop()
    if not out:
        raise BadRequest("The prompt is empty: type a question or some text to continue.")
    return out


def turns(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(role, text) of `turn_messages`: for the families that send no reasoning back."""
    return [(m.role, m.content) for m in turn_messages(messages)]


def redacted_data(redacted: bytes) -> str:
    """Redacted thinking as Anthropic's `data` string: the bytes we kept of it (ASCII), or base64 of
    bytes that came another way (Converse's blob)."""
    try:
        return redacted.decode("ascii")
    except UnicodeDecodeError:
        return base64.b64encode(redacted).decode()


def signed(reasoning: Sequence[ReasoningBlock]) -> list[ReasoningBlock]:
    """The blocks Claude accepts back: signed text or redacted bytes. Unsigned thinking (another
    model's, or cut before its signature) would be rejected, so it is left out."""
    return [b for b in reasoning if b.redacted or (b.signature and b.text)]


def opt(**kv: Any) -> dict:
    """Leave out "provider default" values instead of sending null."""
    return {k: v for k, v in kv.items() if v is not None and v != []}


def transcript(messages: Sequence[Message], system: str, user: str, bot: str) -> str:
    """A plain `User: ... / Bot:` transcript, for text-completion families without a chat format."""
    lines = [system.strip(), ""] if system.strip() else []
    lines += [f"{user if r == 'user' else bot}: {t}" for r, t in turns(messages)]
    return "\n".join([*lines, f"{bot}:"])


def read_messages(
    raw: Any,
    text_of: Callable[[Any, str], str],
    reasoning_of: Callable[[Any, str], tuple[ReasoningBlock, ...]] | None = None,
) -> list[Message]:
    """A `messages` list of {role, content} (Converse and Anthropic alike); `text_of` reads one content,
    `reasoning_of` the thinking blocks an assistant turn carries (kept so they can go upstream)."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list.")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}].role must be 'user' or 'assistant'.")
        where, content = f"messages[{i}].content", m.get("content")
        thought = reasoning_of(content, where) if reasoning_of and m["role"] == "assistant" else ()
        messages.append(Message(m["role"], text_of(content, where), thought))
    return messages


def effort_asked(value: Any, where: str) -> str | None:
    """An effort a request names ("low" | "medium" | "high"; OpenAI's "minimal" is "low", "none" is
    off) or a thinking budget in tokens -> ours; None when it asks nothing."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return effort_of_budget(value)
    word = {"minimal": "low", "none": ""}.get(value, value) if isinstance(value, str) else None
    if word not in ("", *EFFORTS):
        raise BadRequest(f"{where} must be one of none, minimal, low, medium, high (got {value!r}).")
    return word


_LLAMA3 = re.compile(
    r"<\|start_header_id\|>(\w+)<\|end_header_id\|>(.*?)(?=<\|eot_id\|>|<\|start_header_id\|>|$)", re.S
)
_INST = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(?=\[INST\]|$)", re.S)
_SYS = re.compile(r"<<SYS>>(.*?)<</SYS>>", re.S)


def prompt_to_messages(prompt: str) -> tuple[list[Message], str]:
    """A raw prompt (Llama 3 headers, Llama 2 / Mistral `[INST]`, or plain text) -> (messages, system).

    Templated prompts are turned back into turns, because our providers apply their own format;
    plain text is one user message.
    """
    if "<|start_header_id|>" in prompt:
        found = [(role, text.strip()) for role, text in _LLAMA3.findall(prompt)]
        system = "\n\n".join(t for r, t in found if r == "system")
        return [Message(r, t) for r, t in found if r in ("user", "assistant") and t], system
    if "[INST]" in prompt:
        messages, system = [], ""
        for user, answer in _INST.findall(prompt):
            if (sys_block := _SYS.search(user)) is not None:
                system = sys_block.group(1).strip()
                user = _SYS.sub("", user)
            messages.append(Message("user", user.strip()))
            answer = answer.replace("</s>", "").replace("<s>", "").strip()
            if answer:
                messages.append(Message("assistant", answer))
        return messages, system
    return [Message("user", prompt.replace("<s>", "").strip())], ""


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A request body read by its format's field names, values not yet checked (the server checks them)."""

    messages: list[Message]
    system: str = ""
    max_tokens: Any = None
    temperature: Any = None
    top_p: Any = None
    stop: Any = None
    prefix: str = ""  # where the numbers live, for messages that name the field ("inferenceConfig.")
    stop_name: str = ""  # the stop sequences' field name; "" when the format has none
    reasoning: str | None = None  # the effort asked for (checked by `effort_asked`); None: nothing asked


def read_fields(
    messages: list[Message],
    system: str,
    fields: dict,
    max_tokens: str,
    top_p: str = "top_p",
    stop: str = "",
    prefix: str = "",
) -> RawRequest:
    """A `RawRequest` whose numbers sit in `fields` under the family's own names (temperature is
    "temperature" everywhere); `stop` is "" for a family without stop sequences."""
    return RawRequest(
        messages,
        system,
        fields.get(max_tokens),
        fields.get("temperature"),
        fields.get(top_p),
        fields.get(stop) if stop else None,
        prefix=prefix,
        stop_name=stop,
    )


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "stop": "end_turn",
    "finish": "end_turn",
    "complete": "end_turn",
    "max_tokens": "max_tokens",
    "length": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "stop_sequence": "stop_sequence",
    "stop_criteria_met": "stop_sequence",
    "content_filtered": "content_filtered",
    "guardrail_intervened": "content_filtered",
    "error_toxic": "content_filtered",
}


def normalise_stop(reason: str | None) -> StopReason:
    """Any family's stop reason (end_turn, stop, length, FINISH, LENGTH, COMPLETE, ...) in our words."""
    return _STOP.get((reason or "").lower(), "other")


@dataclass(frozen=True, slots=True)
class NativeChunk:
    """What one native JSON chunk says, whatever its family."""

    text: str = ""
    reasoning: ReasoningDelta | None = None  # thinking the family streams apart from the answer
    stop: str | None = None  # the family's own stop word, when this chunk carries it
    input_tokens: int | None = None
    output_tokens: int | None = None
    done: bool = False  # the family's final chunk


def by_reason(end_turn: str, max_tokens: str, stop_sequence: str, content_filtered: str, other: str) -> dict[str, str]:
    """A family's stop words for our stop reasons, in `events.StopReason`'s order."""
    return {
        "end_turn": end_turn,
        "max_tokens": max_tokens,
        "stop_sequence": stop_sequence,
        "content_filtered": content_filtered,
        "other": other,
    }


class Family:
    """One native InvokeModel format. Subclasses set `name`, `stop_words` and the methods below.

    Client side (our Bedrock provider): `matches`, `request_body`, `parse_chunk`.
    Server side (`serve` and the tests' fake Bedrock): `head_chunks`, `text_chunk`, `tail_chunks`,
    `whole_body`, `read_request`.
    """

    name: str
    #: Our stop reasons (events.StopReason) in the family's own words.
    stop_words: dict[str, str]
    #: How the family's text carries thinking: "" (apart, or not at all), "tags" (`<reasoning>...</reasoning>`
    #: before the answer) or "inside" (the stream starts inside the thought and closes it with `</think>`).
    #: The provider splits such text with `reasoning.split_inline_reasoning`.
    inline_reasoning: str = ""
    #: The answer and each piece of thinking are numbered content blocks, opened and closed (Anthropic):
    #: the encoder then calls `open_block` / `close_block` and passes the block number as `text_chunk`'s index.
    has_blocks: bool = False

    def matches(self, base_id: str) -> bool:
        """Whether a bare model id (`base_model_id`) is in this family; by default its vendor prefix."""
        return base_id.split(".", 1)[0] == self.name

    def request_body(self, messages: Sequence[Message], params: Params) -> dict:
        raise NotImplementedError

    def thinking(self, base_id: str, params: Params) -> tuple[dict, Params]:
        """The fields that ask this model to think with effort `params.reasoning` (Converse sends them in
        `additionalModelRequestFields`, native bodies at their top level), and the params to send with
        them. By default none: the family has no switch (it never thinks, or always does)."""
        return {}, params

    def reasoning_back(self, reasoning: Sequence[ReasoningBlock]) -> list[dict]:
        """An assistant turn's reasoning as Converse content blocks sent back before its text: none by
        default (DeepSeek asks for none, and most models can't read them)."""
        return []

    def parse_chunk(self, chunk: dict) -> NativeChunk:
        raise NotImplementedError

    def head_chunks(self, model_id: str, input_tokens: int) -> list[dict]:
        """Chunks sent before any text."""
        return []

    def text_chunk(self, text: str, index: int, input_tokens: int | None) -> dict:
        """The chunk carrying one piece of text (`index`: 0 for the first piece; the block with `has_blocks`)."""
        raise NotImplementedError

    def thinking_chunk(self, thought: ReasoningDelta, block: int) -> dict | None:
        """The chunk carrying thinking apart from the answer, or None when the family has no such chunk (its
        thinking is then written inline, see `inline_reasoning`, or not at all)."""
        return None

    def open_block(self, kind: str, block: int, data: str = "") -> list[dict]:
        """With `has_blocks`: the chunks opening a `text`, `thinking` or `redacted_thinking` (`data`) block."""
        return []

    def close_block(self, block: int) -> list[dict]:
        return []

    def whole_thinking(self, body: dict, reasoning: Sequence[ReasoningBlock]) -> dict:
        """A whole body (`whole_body`) with the answer's thinking in the family's own blocks; unchanged by default."""
        return body

    def tail_chunks(self, stop: str, input_tokens: int, output_tokens: int, metrics: dict) -> list[dict]:
        """Chunks after the text (`stop` in the family's words); the last carries `metrics`."""
        raise NotImplementedError

    def whole_body(self, text: str, stop: str, input_tokens: int, output_tokens: int, model_id: str) -> dict:
        """An InvokeModel (not streamed) response body."""
        raise NotImplementedError

    def read_request(self, body: dict) -> RawRequest:
        """An InvokeModel request body (a JSON object) read back into messages and raw parameters."""
        raise NotImplementedError


def prompt_request(family: str, body: dict) -> tuple[list[Message], str]:
    """The `prompt` string of a text-completion family's body, read back into (messages, system)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest(f"A {family} body needs a prompt string.")
    return prompt_to_messages(prompt)


METRICS_KEY = "amazon-bedrock-invocationMetrics"

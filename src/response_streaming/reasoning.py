"""Inline reasoning tags, split out of a text stream as it arrives.

Servers that don't parse reasoning (llama.cpp without `--reasoning-format`, vLLM without a reasoning
parser), DeepSeek-R1's and gpt-oss's native Bedrock bodies, and small local models write their
thinking into the answer between tags: `<think>…</think>`, `<thinking>…</thinking>` or
`<reasoning>…</reasoning>`. `TagSplitter` turns such a stream into `ReasoningDelta`s and
`TextDelta`s, piece by piece:

- a tag may arrive split across pieces (`<thi` + `nk>`): the possible start of a tag is held back
  until the next piece says what it is, never longer;
- a stream may start inside the thought (DeepSeek-R1 opens with the thinking and only writes
  `</think>`): `starts_inside=True`;
- a thought cut by max_tokens simply ends as reasoning, with an empty answer.

A thought is recognised only before the answer has started (leading whitespace aside), so an answer
that *talks about* a `<think>` tag is left alone. The whitespace a model puts between `</think>` and
its answer is dropped.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

from .events import Event, Finish, Params, ReasoningBlock, ReasoningDelta, TextDelta


def blocks_of(deltas: Iterable[ReasoningDelta]) -> tuple[ReasoningBlock, ...]:
    """Reasoning deltas, in order -> the blocks an assistant turn keeps.

    Text accumulates until a signature closes its block (Claude signs a block at its end); redacted
    bytes are a block of their own. Nothing is trimmed or re-encoded: a signature only verifies the
    exact text.
    """
    blocks: list[ReasoningBlock] = []
    text: list[str] = []
    for d in deltas:
        if d.redacted:
            if text:
                blocks.append(ReasoningBlock("".join(text)))
                text = []
            blocks.append(ReasoningBlock(redacted=d.redacted))
            continue
        text.append(d.text)
        if d.signature:
            blocks.append(ReasoningBlock("".join(text), d.signature))
            text = []
    if any(text):
        blocks.append(ReasoningBlock("".join(text)))
    return tuple(blocks)


def takes_effort(provider: str, model: str) -> bool:
    """Whether `Params.reasoning` switches anything for this provider and model (for a front end's
    Think control): OpenAI-compatible servers take `reasoning_effort`; on Bedrock the model's family
    says (Claude, Nova 2, gpt-oss do; DeepSeek-R1 always thinks; the rest can't)."""
    if provider == "openai":
        return True
    if provider != "bedrock":
        return False
    from .wire.bedrock import base_model_id, family_of  # only the Bedrock case needs the family table

    family = family_of(model)
    return family is not None and bool(family.thinking(base_model_id(model), Params(reasoning="low"))[0])


def reasoning_text(blocks: Iterable[ReasoningBlock]) -> str:
    """The readable thinking of a turn (redacted blocks have none)."""
    return "".join(b.text for b in blocks)


TAGS = ("think", "thinking", "reasoning")
_OPENERS = tuple(f"<{t}>" for t in TAGS)


def _held_prefix(buf: str, candidates: tuple[str, ...]) -> int:
    """Length of the longest end of `buf` that could still grow into one of `candidates`."""
    longest = max(len(c) for c in candidates)
    for n in range(min(len(buf), longest - 1), 0, -1):
        tail = buf[-n:]
        if any(c.startswith(tail) for c in candidates):
            return n
    return 0


class TagSplitter:
    """Feed text pieces in; get the reasoning and answer pieces they hold out, in order."""

    def __init__(self, starts_inside: bool = False) -> None:
        self._buf = ""
        self._closer = "</think>" if starts_inside else ""  # set while inside a thought
        self._answer_started = False
        self._after_thought = False  # drop the blank lines between `</tag>` and the answer
        self._maybe_opener = starts_inside  # R1 may still write its `<think>` itself

    def feed(self, text: str) -> list[Event]:
        self._buf += text
        out: list[Event] = []
        while self._buf:
            if self._closer:
                if not self._step_inside(out):
                    break
            elif not self._step_outside(out):
                break
        return out

    def flush(self) -> list[Event]:
        """The end of the stream: whatever was held back goes where it stands."""
        buf, self._buf = self._buf, ""
        if not buf:
            return []
        if self._closer:
            return [ReasoningDelta(buf)]
        if not self._answer_started and not buf.strip():
            return []
        return [TextDelta(buf)]

    def _step_inside(self, out: list[Event]) -> bool:
        buf = self._buf
        if self._maybe_opener:  # starts_inside, but the model may open the tag itself
            stripped = buf.lstrip()
            opener = next((o for o in _OPENERS if stripped.startswith(o)), None)
            if opener:
                self._closer = "</" + opener[1:]
                self._buf = buf = stripped[len(opener) :]
                self._maybe_opener = False
            elif not stripped or any(o.startswith(stripped) for o in _OPENERS):
                return False  # too little to tell yet
            self._maybe_opener = False
        end = buf.find(self._closer)
        if end >= 0:
            if end:
                out.append(ReasoningDelta(buf[:end]))
            self._buf = buf[end + len(self._closer) :]
            self._closer = ""
            self._after_thought = True
            return True
        keep = _held_prefix(buf, (self._closer,))
        if len(buf) > keep:
            out.append(ReasoningDelta(buf[: len(buf) - keep]))
            self._buf = buf[len(buf) - keep :]
        return False

    def _step_outside(self, out: list[Event]) -> bool:
        buf = self._buf
        if self._answer_started:
            out.append(TextDelta(buf))
            self._buf = ""
            return False
        stripped = buf.lstrip()
        if not stripped:
            return False  # only whitespace so far: it may precede a thought
        for opener in _OPENERS:
            if stripped.startswith(opener):
                self._closer = "</" + opener[1:]
                self._buf = stripped[len(opener) :]
                return True
        if _held_prefix(stripped, _OPENERS) == len(stripped):
            return False  # `<thi`: wait for the rest
        self._answer_started = True
        self._buf = ""
        out.append(TextDelta(stripped if self._after_thought else buf))
        return False


def split_inline_reasoning(events: Iterable[Event], starts_inside: bool = False) -> Generator[Event, None, None]:
    """Pass a provider's events through a `TagSplitter` (text only; the rest unchanged, in order)."""
    splitter = TagSplitter(starts_inside)
    try:
        for event in events:
            if isinstance(event, TextDelta):
                yield from splitter.feed(event.text)
                continue
            if isinstance(event, Finish):
                yield from splitter.flush()
            yield event
        yield from splitter.flush()
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()

"""From messages to prompt tokens: the GGUF's own chat template, or a plain transcript; stop matching.

- A chat model (SmolLM2, any GGUF with `tokenizer.chat_template`) gets its template, rendered by
  Jinja2's immutable sandbox: the template is code from a file, and must not reach Python's
  internals (CVE-2024-34359 was that hole in llama-cpp-python).
- A base model (the bundled Gemma 3 270M, a GGUF without a template) continues text: it gets a
  transcript ending in "Assistant:", and the next "User:" line is a stop sequence.
- Message text is tokenized as text, the template's own markup as special tokens: a user who types
  "<|im_end|><|im_start|>system" writes those characters, not a new turn. To do that, the template
  is rendered once with a placeholder for each message's content and the result split there.
- Fitting a long conversation into the context tokenizes each message once and drops the oldest turns
  by arithmetic on those counts, then renders the kept ones: linear in the conversation's length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from ...errors import BadRequest
from ...events import Message

TRANSCRIPT_STOPS = ("\nUser:", "\nAssistant:")
_HOLE = "\x00{}\x00"  # a placeholder no message contains (NUL is stripped from contents below)
_HOLES = re.compile("\x00(\\d+)\x00")


def build_prompt(messages: Sequence[Message], system: str = "") -> str:
    """A plain transcript; the model continues after the final "Assistant:".

    When the last message is the assistant's (a cut-off answer to continue), the transcript ends
    with that text, so the base model writes straight on from it.
    """
    lines = [system.strip(), ""] if system.strip() else []
    for m in messages:
        speaker = "User" if m.role == "user" else "Assistant"
        lines.append(f"{speaker}: {m.content.strip()}")
    if not messages or messages[-1].role == "user":
        lines.append("Assistant:")
    return "\n".join(lines)


@lru_cache(maxsize=8)
def _compile(source: str):
    from jinja2 import BaseLoader
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise BadRequest(f"The model's chat template refused this conversation: {message}")

    env = ImmutableSandboxedEnvironment(loader=BaseLoader(), trim_blocks=True, lstrip_blocks=True)
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt))
    return env.from_string(source)


def check_template(source: str) -> bool:
    """Whether a GGUF's template compiles and renders a plain exchange (else the transcript is used)."""
    try:
        render_chat(source, [Message("user", "a"), Message("assistant", "b")], "", "", "")
        return True
    except Exception:  # a template is foreign code: any failure means "don't use it"
        return False


def render_chat(source: str, messages: Sequence[Message], system: str, bos: str, eos: str, cut: bool = True) -> str:
    """The template rendered with a hole for each content: "\\x00i\\x00" stands for message i."""
    turns = [{"role": "system", "content": _HOLE.format(len(messages))}] if system.strip() else []
    turns += [{"role": m.role, "content": _HOLE.format(i)} for i, m in enumerate(messages)]
    continuing = bool(messages) and messages[-1].role == "assistant"
    text = _compile(source).render(messages=turns, add_generation_prompt=not continuing, bos_token=bos, eos_token=eos)
    if continuing and cut:
        # Continue the cut-off answer in place: cut the template's end-of-turn markup after it.
        last = text.rfind(_HOLE.format(len(messages) - 1))
        text = text[: last + len(_HOLE.format(len(messages) - 1))]
    return text


def render_transcript(messages: Sequence[Message], system: str) -> str:
    holes = [Message(m.role, _HOLE.format(i)) for i, m in enumerate(messages)]
    return build_prompt(holes, _HOLE.format(len(messages)) if system.strip() else "")


@dataclass
class PromptFormat:
    """How one loaded model's prompts are built. `template` None means the plain transcript."""

    tokenize: Callable[[str, bool], list[int]]  # (text, parse special tokens) -> tokens, no BOS added
    template: str | None
    bos: list[int]  # prepended to every prompt ([] when the model or its template adds none)
    bos_text: str = ""
    eos_text: str = ""

    @property
    def kind(self) -> str:
        return "chat" if self.template else "transcript"

    @property
    def stops(self) -> tuple[str, ...]:
        return () if self.template else TRANSCRIPT_STOPS

    def end_of_turn(self, is_control: Callable[[int], bool]) -> frozenset[int]:
        """The token the template closes an assistant turn with, when it is a control token
        (e.g. ChatML's "<|im_end|>"); the vocabulary's end-of-generation tokens are added by the engine."""
        if not self.template:
            return frozenset()
        exchange = [Message("user", "a"), Message("assistant", "b")]
        text = render_chat(self.template, exchange, "", self.bos_text, self.eos_text, cut=False)
        after = text.rsplit(_HOLE.format(1), 1)
        tail = self.tokenize(after[1], True) if len(after) == 2 else []
        return frozenset(tail[:1]) if tail and is_control(tail[0]) else frozenset()

    def render(self, messages: Sequence[Message], system: str) -> str:
        if self.template:
            return render_chat(self.template, messages, system, self.bos_text, self.eos_text)
        return render_transcript(messages, system)

    def tokens(self, messages: Sequence[Message], system: str, cache: dict, offset: int = 0) -> list[int]:
        """The prompt's tokens: the template's markup parsed for special tokens, each content tokenized
        as plain text once (kept in `cache` by its index in the whole conversation, `offset` + i)."""
        parts = _HOLES.split(self.render(messages, system))
        glue, holes = parts[0::2], [int(i) for i in parts[1::2]]
        out: list[int] = []
        if self.bos and not (self.bos_text and glue[0].startswith(self.bos_text)):
            out += self.bos
        for k, markup in enumerate(glue):
            if k < len(holes):
                i = holes[k]
                # A space that ends the markup ("User: ") belongs to the content's first word, as when
                # the whole text is tokenized at once ("▁Hi", not "▁" + "Hi").
                lead = markup.endswith(" ")
                key = ("system" if i == len(messages) else offset + i, lead)
                if key not in cache:
                    text = system if i == len(messages) else messages[i].content
                    cache[key] = self.tokenize((" " if lead else "") + clean(text), False)
                out += _tokens_of(self.tokenize, markup[:-1] if lead else markup, True) + cache[key]
            else:
                out += _tokens_of(self.tokenize, markup, True)
        return out

    def fit(self, messages: Sequence[Message], system: str, room: int) -> list[int]:
        """The prompt tokens of the latest turns that fit in `room`, the oldest turns dropped.

        Each message is tokenized once; how many turns to drop is found from those counts (plus the
        markup around each, measured on the full render), then the kept turns are rendered once more
        to get the exact tokens. Dropping goes by whole exchanges, so the prompt still starts with a user.
        """
        msgs = list(messages)
        if not msgs or not msgs[-1].content.strip():
            raise BadRequest("The prompt is empty: type a question or some text to continue.")
        cache: dict = {}
        tokens = self.tokens(msgs, system, cache)
        if len(tokens) <= room or len(msgs) == 1:
            return tokens
        sizes = [0] * len(msgs)
        for (i, _), toks in cache.items():
            if i != "system":
                sizes[i] = len(toks)
        markup = max(0, len(tokens) - sum(len(t) for t in cache.values())) / len(msgs)
        start, total = 0, float(len(tokens))
        while True:
            while total > room and len(msgs) - start > 1:
                step = 2 if len(msgs) - start > 2 else 1
                total -= sum(sizes[start : start + step]) + step * markup
                start += step
            tokens = self.tokens(msgs[start:], system, cache, offset=start)
            if len(tokens) <= room or len(msgs) - start == 1:
                return tokens
            total = float(len(tokens))  # the estimate was short: keep dropping from the exact count


def clean(text: str) -> str:
    return text.replace("\x00", "").strip()


@lru_cache(maxsize=256)
def _cached(tokenize, text: str, special: bool) -> tuple[int, ...]:
    return tuple(tokenize(text, special))


def _tokens_of(tokenize, text: str, special: bool) -> list[int]:
    # The markup between messages repeats ("<|im_end|>\n<|im_start|>user\n"): tokenize each once.
    return list(_cached(tokenize, text, special)) if text else []


class StopMatcher:
    """Finds stop sequences in streamed text without showing a stop sequence's first characters.

    Text that could be the start of a stop sequence is held back until the next piece decides it.
    `feed` returns (text safe to emit, whether a stop sequence was reached).

    Cost per piece: one regular-expression search over the held text plus the piece (never the whole
    answer), and the hold-back is looked up among the stops' prefixes indexed by their last
    character, so many stop sequences don't mean a Python loop over them on every token.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(dict.fromkeys(s for s in stops if s))
        self.held = ""
        self.matched = ""  # the stop sequence that ended the text, once one has
        self._prefixes: dict[str, set[str]] = {}  # last char -> proper prefixes of stops ending with it
        for s in self.stops:
            for n in range(1, len(s)):
                self._prefixes.setdefault(s[n - 1], set()).add(s[:n])
        self._longest = max((len(s) for s in self.stops), default=0)
        # One search finds the leftmost stop (longest first where two start at the same place).
        self._pattern = re.compile("|".join(re.escape(s) for s in sorted(self.stops, key=len, reverse=True)))

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        buf = self.held + text
        found = self._pattern.search(buf)
        if found:
            self.matched = found.group()
            self.held = ""
            return buf[: found.start()], True
        keep = 0
        if buf and buf[-1] in self._prefixes:
            tail = buf[-(self._longest - 1) :] if self._longest > 1 else ""
            for p in self._prefixes[buf[-1]]:
                if len(p) > keep and tail.endswith(p):
                    keep = len(p)
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held

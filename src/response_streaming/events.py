"""The provider contract's vocabulary: messages in, typed events out.

Every provider turns `(messages, params)` into an iterator of these events; every front end only
consumes them. Nothing here imports an SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ReasoningBlock:
    """One block of an assistant turn's thinking, as it is kept and sent back.

    `signature` (Claude's proof that the text is the model's own) and `redacted` (thinking the
    provider encrypted) go back byte for byte; a block has either text (with or without a
    signature) or redacted bytes.
    """

    text: str = ""
    signature: str = ""
    redacted: bytes = b""


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    #: An assistant turn's thinking, in order, apart from its answer (`content`).
    reasoning: tuple[ReasoningBlock, ...] = ()


#: The efforts `Params.reasoning` takes ("" asks for nothing: the model's own default).
EFFORTS = ("low", "medium", "high")
#: Claude's thinking budget (budget_tokens, at least 1024) for each effort. The answer keeps its own
#: max_tokens: the budget is added on top, since Claude counts thinking within max_tokens.
EFFORT_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}


def effort_of_budget(budget: int) -> str:
    """A thinking budget a client asked for (Claude's budget_tokens) -> the least effort whose budget covers it."""
    return next((e for e in EFFORTS if budget <= EFFORT_BUDGET[e]), "high")


@dataclass(frozen=True, slots=True)
class Params:
    """Generation parameters. `None` means "the provider's own default"."""

    max_tokens: int = 512
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    system: str = ""
    #: Ask the model to think first: "" (the model's own default), "low", "medium" or "high".
    #: Each family maps the effort to its own switch (EFFORT_BUDGET for Claude's budget).
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking, kept apart from the answer.

    `signature` (Claude) and `redacted` (encrypted thinking) must go back to the model byte for byte
    when the conversation continues, so they travel with the text rather than being dropped.
    """

    text: str = ""
    signature: str = ""
    redacted: bytes = b""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


# Stop reasons are normalised to these words whatever the provider calls them.
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "content_filtered", "other"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: StopReason
    latency_ms: int | None = field(default=None)


Event = TextDelta | ReasoningDelta | Usage | Finish


class Provider(Protocol):
    """One method, a generator of events.

    A provider's stream must end with `Finish` when the model says it is done; a stream that ends
    without it is incomplete. The generator must release its upstream (HTTP response, model lock)
    in `finally`, because consumers abandon it whenever the user clicks Stop or closes a tab.
    """

    name: str  # the registry's name (providers.PROVIDERS)
    model: str
    #: True when a conversation ending with the assistant's own words is continued in place (a base
    #: model); otherwise "continue" sends one more user instruction, as not every API accepts that.
    continues_in_place: bool

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]: ...

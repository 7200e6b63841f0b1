"""A scripted provider: streams a fixed text at a fixed rate, optionally failing on cue.

It is the right tool where the point is *our* layer (renderer cost, hostile output, injected
faults), never a stand-in for a real model's proof.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..errors import ResponseStreamingError, StreamInterrupted
from ..events import Event, Finish, Message, Params, ReasoningDelta, TextDelta, Usage

STORY = (
    "Once upon a time, two cats named Miso and Pepper lived at the edge of a quiet village. "
    "One morning they found a map tucked under the doormat, and it showed a path to the old lighthouse.\n\n"
    "They packed a ball of yarn and set off together. Along the way they crossed a creaking bridge, "
    "outwitted a curious fox, and shared a sardine with a lonely gull.\n\n"
    "At the lighthouse they found no treasure, only a view of the whole sea, and they agreed that was better."
)

_TOKEN = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Word-sized pieces, each carrying its leading whitespace; joined they give `text` back."""
    return _TOKEN.findall(text)


@dataclass
class ReplayProvider:
    text: str = STORY
    rate: float = 0.0  # tokens per second; 0 = as fast as the consumer reads
    fail_after: int | None = None  # raise after this many tokens
    error: ResponseStreamingError | None = None  # what to raise (default: StreamInterrupted)
    finish: bool = True  # False: end without Finish, like a truncated stream
    thinking: tuple[ReasoningDelta, ...] = ()  # streamed before the text, as a reasoning model does
    name: str = "replay"
    model: str = "replay"
    continues_in_place: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayProvider:
        thinking = tuple(map(ReasoningDelta, split_tokens(settings.replay_thinking)))
        return cls(
            text=settings.replay_text or STORY,
            rate=settings.replay_rate,
            model=settings.model or "replay",
            thinking=thinking,
        )

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        tokens = split_tokens(self.text)[: params.max_tokens]
        start = time.monotonic()
        pieces: list[str | ReasoningDelta] = [*self.thinking, *tokens]  # thinking first, at the same rate
        for i, piece in enumerate(pieces):
            if self.fail_after is not None and i - len(self.thinking) >= self.fail_after:
                raise self.error or StreamInterrupted("The model stream broke off (injected fault).")
            if self.rate:
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield piece if isinstance(piece, ReasoningDelta) else TextDelta(piece)
        if not self.finish:
            return
        prompt_tokens = sum(len(split_tokens(m.content)) for m in messages)
        yield Usage(input_tokens=prompt_tokens, output_tokens=len(tokens))
        yield Finish("end_turn" if len(tokens) == len(split_tokens(self.text)) else "max_tokens")

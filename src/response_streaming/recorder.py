"""Consumes a provider stream for a front end: passes text through, measures it, and knows how it ended.

Every front end iterates a `Recorder` instead of the raw stream, so all of them report the same
time-to-first-token, tokens/s and status, and all of them keep the partial answer when a stream
fails or the user stops it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

from .errors import ResponseStreamingError
from .events import Event, Finish, ReasoningDelta, TextDelta, Usage

log = logging.getLogger(__name__)

Status = Literal["streaming", "complete", "stopped", "error", "incomplete"]


@dataclass
class Metrics:
    ttft_ms: int | None = None
    duration_ms: int = 0
    input_tokens: int | None = None
    output_tokens: int = 0
    tokens_per_s: float | None = None
    stop_reason: str | None = None
    #: Time to the first token of thinking (None: the model streamed none); `ttft_ms` stays the answer's.
    ttfr_ms: int | None = None

    def as_dict(self) -> dict:
        m = asdict(self)
        if m["ttfr_ms"] is None:  # an answer without thinking keeps exactly the metrics it always had
            del m["ttfr_ms"]
        return m


@dataclass
class Recorder:
    """Iterate it to get text pieces. Afterwards `status`, `text`, `error` and `metrics` say what happened.

    Errors never escape the iteration: a `ResponseStreamingError` (or any other exception, as a
    generic safe message) ends it with status `error`; `self.exception` keeps the original for
    callers that must re-raise (LangChain). The upstream stream is always closed.
    """

    events: Iterator[Event]
    status: Status = "streaming"
    error: str = ""
    exception: BaseException | None = None
    metrics: Metrics = field(default_factory=Metrics)
    pieces: list[str] = field(default_factory=list)
    first_at: float | None = None
    #: The thinking, as it came (join with `reasoning.blocks_of` to keep or send back).
    reasoning: list[ReasoningDelta] = field(default_factory=list)
    first_any_at: float | None = None  # the first token of either kind: where the reading rate starts

    def live_metrics(self) -> dict:
        """Metrics so far, for a display that updates while the answer streams."""
        m = self.metrics.as_dict()
        if self.status == "streaming" and self.first_at is not None:
            m["output_tokens"] = len(self.pieces)
            elapsed = time.monotonic() - self.first_at
            if len(self.pieces) > 1 and elapsed > 0:
                m["tokens_per_s"] = round((len(self.pieces) - 1) / elapsed, 2)
        return m

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def reasoning_text(self) -> str:
        return "".join(d.text for d in self.reasoning)

    def __iter__(self) -> Iterator[str]:
        """The answer's text pieces (thinking is recorded, not yielded)."""
        items = self.stream()
        try:
            for item in items:
                if isinstance(item, str):
                    yield item
        finally:
            items.close()

    def stream(self) -> Generator[str | ReasoningDelta, None, None]:
        """The answer's text pieces and the thinking's `ReasoningDelta`s, in the order they came."""
        start = time.monotonic()
        deltas = 0
        try:
            for event in self.events:
                if isinstance(event, TextDelta):
                    if self.first_at is None:
                        self.first_at = time.monotonic()
                        self.metrics.ttft_ms = int((self.first_at - start) * 1000)
                    self.first_any_at = self.first_any_at or self.first_at
                    deltas += 1
                    self.pieces.append(event.text)
                    yield event.text
                elif isinstance(event, ReasoningDelta):
                    if self.first_any_at is None:
                        self.first_any_at = time.monotonic()
                        self.metrics.ttfr_ms = int((self.first_any_at - start) * 1000)
                    deltas += 1 if event.text else 0
                    self.reasoning.append(event)
                    yield event
                elif isinstance(event, Usage):
                    self.metrics.input_tokens = event.input_tokens
                    self.metrics.output_tokens = event.output_tokens
                elif isinstance(event, Finish):
                    self.metrics.stop_reason = event.reason
                    self.status = "complete"
            if self.status != "complete":
                self.status = "incomplete"
                self.error = "The model's stream ended before it said it was done; the answer may be cut short."
        except ResponseStreamingError as err:
            self._fail(err, str(err))
        except Exception as err:  # a bug or an unmapped SDK error: log it, show a safe line
            log.exception("unexpected error while streaming")
            self._fail(err, f"Unexpected error ({type(err).__name__}); the details are in the server log.")
        except BaseException:
            # GeneratorExit (consumer closed us), Streamlit's rerun/stop, KeyboardInterrupt.
            self.status = "stopped"
            raise
        finally:
            close = getattr(self.events, "close", None)
            if close:
                close()
            end = time.monotonic()
            self.metrics.duration_ms = int((end - start) * 1000)
            if not self.metrics.output_tokens:
                self.metrics.output_tokens = deltas
            first = self.first_any_at  # thinking tokens are output tokens too
            if first is not None and end > first and self.metrics.output_tokens > 1:
                # Tokens after the first over the time they took: the rate a reader sees.
                self.metrics.tokens_per_s = round((self.metrics.output_tokens - 1) / (end - first), 2)

    def _fail(self, err: BaseException, message: str) -> None:
        self.status = "error"
        self.error = message
        self.exception = err

    def run(self) -> Recorder:
        """Drain the stream (for callers that need no live text)."""
        for _ in self:
            pass
        return self

"""A job: one generation, owning its provider stream from start to end, independent of any viewer.

Two threads per job. The reader iterates the provider through a `Recorder` (which measures it and
turns every failure into a status) and closes it in the same thread, as the local model's lock
requires. The writer appends what the reader got to the log: the first piece at once (time to first
token must not wait for a batch), later ones together every `window` seconds, so a generation costs
about twenty small writes per second whatever the token rate. Viewers read only the log, so a piece
reaches the log before it reaches anyone.

Only `stop()` ends a job early: a Stop (status `stopped`) or the process shutting down
(`interrupted`). The writer then saves at once, with what the log holds plus what was pending; the
reader closes the provider stream after the piece in flight.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from ..errors import ResponseStreamingError, StreamInterrupted
from ..events import Event, Message, Params, Provider, ReasoningDelta
from ..recorder import Recorder
from .log import Ending, Kind, Log, Lost

log = logging.getLogger(__name__)

INTERRUPTED = (
    "The app stopped while this answer was being written (a restart or a crash); the text above is what had arrived."
)
RETRY_WRITES = 20  # consecutive failed appends (about 10 s) before a job gives up on the database


def terminal(status: str, error: str, metrics: dict, exception: BaseException | None = None) -> tuple[Kind, str, dict]:
    """The last chunk of a generation: `finish` for complete or stopped, `error` (with an HTTP status) otherwise."""
    if status in ("complete", "stopped"):
        return "finish", "", {"status": status, "reason": metrics.get("stop_reason"), "metrics": metrics}
    if isinstance(exception, ResponseStreamingError):
        kind, http = type(exception).__name__, exception.status
    elif exception is not None:  # a bug or an unmapped error: the Recorder logged it and wrote a safe line
        kind, http = "ResponseStreamingError", 500
    else:  # incomplete or interrupted: the answer stopped before the model said it was done
        kind, http = StreamInterrupted.__name__, StreamInterrupted.status
    return "error", "", {"status": status, "message": error, "type": kind, "http_status": http, "metrics": metrics}


class Job:
    def __init__(
        self,
        log_: Log,
        gid: str,
        owner: str,
        provider: Provider,
        messages: Sequence[Message],
        params: Params,
        window: float,
        on_end: Callable[[Job], None],
    ) -> None:
        self.log, self.gid, self.owner = log_, gid, owner
        self.provider = provider
        self.window = window
        self.on_end = on_end
        self.rec = Recorder(self._events(provider, list(messages), params))
        self._cond = threading.Condition()
        self._pending: list[str | ReasoningDelta] = []
        self._read_done = False
        self._ending: str | None = None  # "stopped" / "interrupted" once asked to end early
        self.seq = 0  # the last sequence number appended
        self._seen: set[str] = set()  # the chunk kinds appended so far (the first of each kind carries its time)
        self.ended = threading.Event()  # the final chunk and the answer are written (or another process did it)
        self.status: str | None = None
        self.started = time.monotonic()

    @staticmethod
    def _events(provider: Provider, messages: list[Message], params: Params) -> Iterator[Event]:
        # Calling `stream` inside the generator: a provider that raises on call is caught by the Recorder too.
        yield from provider.stream(messages, params)

    def start(self) -> None:
        threading.Thread(target=self._read, name="rs-generation-read", daemon=True).start()
        threading.Thread(target=self._write, name="rs-generation-write", daemon=True).start()

    def stop(self, status: str = "stopped") -> None:
        with self._cond:
            if self._ending is None:
                self._ending = status
            self._cond.notify_all()

    def _read(self) -> None:
        pieces = self.rec.stream()  # text pieces and the thinking's ReasoningDeltas, in order
        try:
            for piece in pieces:
                with self._cond:
                    if self._ending is not None:
                        break
                    self._pending.append(piece)
                    self._cond.notify_all()
        except BaseException:  # the Recorder turns errors into a status; this is a last guard
            log.exception("generation reader failed")
        finally:
            pieces.close()  # GeneratorExit into the Recorder: it closes the provider stream
            with self._cond:
                self._read_done = True
                self._cond.notify_all()

    def _write(self) -> None:
        last: float | None = None  # when the last append went out
        failures = 0
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._pending or self._read_done or self._ending)
                    if last is not None:  # the first piece goes out at once; later ones together
                        deadline = last + self.window
                        while not (self._read_done or self._ending) and (left := deadline - time.monotonic()) > 0:
                            self._cond.wait(left)
                    batch, self._pending = self._pending, []
                    ending = self._ending or ("done" if self._read_done else None)
                if ending:
                    self._finish(batch, ending)
                    return
                try:
                    chunks = self._chunks(batch)
                    stop = self.log.append(self.gid, self.seq + 1, chunks, owner=self.owner)
                except Lost:
                    raise
                except Exception:
                    failures += 1
                    log.exception("could not append to the generation log (attempt %d)", failures)
                    with self._cond:
                        self._pending[:0] = batch  # keep the text; the next attempt writes it
                    if failures >= RETRY_WRITES:
                        self.stop("error")
                    time.sleep(0.5)
                    continue
                failures, last = 0, time.monotonic()
                self.seq += len(chunks)
                self._seen.update(kind for kind, _, _ in chunks)
                if stop:
                    self.stop("stopped")
        except Lost:
            log.warning("generation %s was ended by another process; stopping here", self.gid)
            self.stop("interrupted")
        except Exception:
            log.exception("generation writer failed")
            self.stop("error")
        finally:
            self.ended.set()
            self.on_end(self)

    def _chunks(self, batch: Sequence[str | ReasoningDelta]) -> list[tuple[Kind, str, dict]]:
        """A batch of pieces as log chunks: each run of text one `text` chunk, each run of thinking one
        `reasoning` chunk, in order. `n`: pieces (tokens) in the chunk, so a viewer or a recovery can
        count them; the first text chunk says the TTFT, the first reasoning chunk the time to it. A
        signature ends its chunk (it closes a block of thinking); redacted bytes are a chunk of their
        own (base64 in `data`), so the thinking is kept byte for byte (`answer.reasoning_meta`)."""
        runs: list[tuple[Kind, list[str], dict]] = []
        for item in batch:
            kind: Kind = "text" if isinstance(item, str) else "reasoning"
            last = runs[-1] if runs else None
            closed = last is not None and ("signature" in last[2] or "redacted" in last[2])
            if last is None or last[0] != kind or closed or (isinstance(item, ReasoningDelta) and item.redacted):
                data: dict = {}
                if kind not in self._seen and all(k != kind for k, _, _ in runs):
                    key = "ttft_ms" if kind == "text" else "ttfr_ms"
                    data[key] = self.rec.metrics.ttft_ms if kind == "text" else self.rec.metrics.ttfr_ms
                runs.append(last := (kind, [], data))
            if isinstance(item, str):
                last[1].append(item)
                continue
            if item.text:
                last[1].append(item.text)
            if item.signature:
                last[2]["signature"] = item.signature
            if item.redacted:
                last[2]["redacted"] = base64.b64encode(item.redacted).decode()
        return [(kind, "".join(parts), {"n": len(parts), **data}) for kind, parts, data in runs]

    def _finish(self, batch: list[str | ReasoningDelta], ending: str) -> None:
        rec = self.rec
        status: str
        if ending == "done":
            status, error, metrics = rec.status, rec.error, rec.metrics.as_dict()
            if status == "streaming":  # cannot happen once the reader is done; be safe
                status = "incomplete"
        else:  # ended early: the reader may still be inside the provider, so the Recorder has not summed up yet
            status, metrics = ending, rec.live_metrics()
            metrics["duration_ms"] = int((time.monotonic() - self.started) * 1000)
            error = {
                "interrupted": INTERRUPTED,
                "error": "The answer could not be saved while it streamed; the text above is what was saved.",
            }.get(ending, "")
        chunks: list[tuple[Kind, str, dict]] = self._chunks(batch)
        if ending == "done" and rec.metrics.input_tokens is not None:
            chunks.append(
                ("usage", "", {"input_tokens": rec.metrics.input_tokens, "output_tokens": rec.metrics.output_tokens})
            )
        chunks.append(terminal(status, error, metrics, rec.exception if ending == "done" else None))
        self.log.append(self.gid, self.seq + 1, chunks, Ending(status, error, metrics), owner=self.owner)
        self.seq += len(chunks)
        self.status = status

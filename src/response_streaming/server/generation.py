"""One generation per request: the provider runs in its own thread, the event loop only relays.

Why a thread of our own rather than Starlette's `StreamingResponse` over a sync iterator: that one
steps the iterator in a worker pool and, when the client leaves, abandons it without closing it, so
the model lock would stay held until garbage collection. Here the thread owns the provider stream
(through a `Recorder`, which measures it) and closes it as soon as `stop()` is called: after the
token in flight, the local model is free.

`GenerationResponse` is the ASGI side: it watches for the client going away from the first moment
(while the request still waits in the model's queue, too), holds the status line back until the
first piece or error is known (so an error that happens before any text gets its real status, e.g.
429 when the queue is full), and writes one log line when the request ends, however it ends.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from starlette.responses import Response

from ..errors import ResponseStreamingError, StreamInterrupted
from ..events import Event, Message, Params, Provider, ReasoningDelta
from ..recorder import Recorder

log = logging.getLogger("response_streaming.server")

INTERNAL = "Internal server error; the details are in the server log."
BUFFER = 64  # pieces a slow client may lag behind before the provider thread waits for it


@dataclass(frozen=True)
class End:
    """The last item of every generation: the recorder knows status, error, metrics and text."""

    rec: Recorder


def failure(rec: Recorder) -> ResponseStreamingError | None:
    """What went wrong, as one of our errors (None for a complete answer).

    A stream that ended without `Finish` is reported as interrupted: its answer may be cut short.
    Any other exception was logged by the Recorder; the client gets its safe one-line message.
    """
    if rec.status == "complete":
        return None
    if isinstance(rec.exception, ResponseStreamingError):
        return rec.exception
    if rec.exception is not None:  # a bug or an unmapped error: the Recorder's safe line, status 500
        return ResponseStreamingError(rec.error)
    return StreamInterrupted(rec.error or "The answer stopped before it was complete.")


class Generation:
    """Runs `provider.stream(messages, params)` in a daemon thread; `await get()` yields str pieces, then `End`."""

    def __init__(
        self, provider: Provider, messages: Sequence[Message], params: Params, live: set | None = None
    ) -> None:
        self.provider = provider
        self.live = live if live is not None else set()  # the app's open generations (for /health)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._room = threading.Semaphore(BUFFER)
        self._stop = threading.Event()
        self.done = threading.Event()  # set once the provider stream is closed (model lock released)
        self.ended = False  # `End` has been handed out
        self.rec = Recorder(self._events(messages, params))

    def start(self) -> None:
        """Start generating. Called by the response that will read it, so nothing runs unread."""
        self._loop = asyncio.get_running_loop()
        self.live.add(self)
        threading.Thread(target=self._run, name="generation", daemon=True).start()

    def _events(self, messages, params) -> Iterator[Event]:
        # Calling `stream` inside the generator means a provider that raises on call, not on first
        # `next`, is still caught by the Recorder like any other error.
        yield from self.provider.stream(messages, params)

    def _run(self) -> None:
        pieces = self.rec.stream()  # the answer's text pieces and the thinking's ReasoningDeltas
        try:
            for piece in pieces:
                if not self._put(piece):
                    break
        finally:
            pieces.close()  # GeneratorExit into the Recorder: it closes the provider stream
            self.live.discard(self)
            self.done.set()
            self._send(End(self.rec))

    def _put(self, item) -> bool:
        while not self._room.acquire(timeout=0.2):
            if self._stop.is_set():
                return False
        return not self._stop.is_set() and self._send(item)

    def _send(self, item) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            return True
        except RuntimeError:  # the event loop is gone (server shutting down)
            self._stop.set()
            return False

    async def get(self) -> str | ReasoningDelta | End:
        item = await self._queue.get()
        if not isinstance(item, End):
            self._room.release()
        else:
            self.ended = True
        return item

    def ready(self) -> list:
        """The items already waiting, without waiting for more (see `GenerationResponse._stream`)."""
        items = []
        while not self.ended and not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, End):
                self._room.release()
            else:
                self.ended = True
            items.append(item)
        return items

    async def wait_end(self) -> None:
        while not self.ended:
            await self.get()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class Wire(Protocol):
    """How one API frames a generation. Bytes for streams; a whole `Response` otherwise."""

    media_type: str
    headers: Mapping[str, str]  # extra response headers of a stream

    def error_response(self, err: ResponseStreamingError) -> Response: ...
    def start(self) -> bytes: ...
    def piece(self, text: str) -> bytes: ...
    def reasoning(self, thought: ReasoningDelta) -> bytes: ...
    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes: ...
    def whole(self, rec: Recorder) -> Response: ...


class GenerationResponse(Response):
    """Serves a `Generation` as a stream (`stream=True`) or as one body, through a `Wire`."""

    def __init__(self, gen: Generation, wire: Wire, stream: bool, log_fields: dict) -> None:
        self.gen, self.wire, self.stream = gen, wire, stream
        self.log_fields = log_fields
        # As Starlette's own StreamingResponse: no body to render, so no Content-Length; the headers
        # are a stream's (a whole answer is sent by the wire's own Response).
        self.status_code, self.background, self.media_type = 200, None, wire.media_type
        # x-accel-buffering: proxies must not hold the stream back
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no", **wire.headers})

    async def __call__(self, scope, receive, send) -> None:
        scope["rs.logged"] = True  # this response writes the request's log line itself
        started = time.monotonic()
        outcome, status, began = "stopped", 499, False  # 499: nginx's "client closed request"
        self.gen.start()

        async def tracked_send(message) -> None:
            nonlocal began
            began = True
            await send(message)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, tg.cancel_scope)
                run = self._stream if self.stream else self._whole
                outcome, status = await run(scope, receive, tracked_send)
                tg.cancel_scope.cancel()
        except Exception:  # a bug of ours: log it, never show it
            log.exception("error while serving a generation")
            outcome, status = "error:internal", 500
            if not began:
                await self.wire.error_response(ResponseStreamingError(INTERNAL))(scope, receive, send)
        finally:
            self.gen.stop()
            try:
                await self.gen.wait_end()  # the metrics are final once the provider stream is closed
            finally:
                write_log(self.log_fields, self.gen, outcome, status, time.monotonic() - started)

    async def _watch(self, receive, scope: anyio.CancelScope) -> None:
        # The body was read by the endpoint, so the next message is the client leaving.
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gen.stop()
        scope.cancel()

    async def _stream(self, scope, receive, send) -> tuple[str, int]:
        item = await self.gen.get()
        if isinstance(item, End) and (err := failure(item.rec)) and not item.rec.text:
            response = self.wire.error_response(err)
            await response(scope, receive, send)
            return outcome_of(item.rec), response.status_code
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.wire.start(), "more_body": True})
        items = [item]
        while not isinstance(items[-1], End):
            # Every piece keeps its own event/frame, but pieces that queued up while the loop was busy
            # go out in one socket write: one write per token per client was the largest cost with
            # many clients (bench/server.py), and a busy loop then fell further and further behind.
            await send({"type": "http.response.body", "body": b"".join(map(self._frame, items)), "more_body": True})
            items = [await self.gen.get()]
            items += self.gen.ready()
        end = items.pop()
        assert isinstance(end, End)  # the loop above ends on it
        body = b"".join(map(self._frame, items)) + self.wire.end(end.rec, failure(end.rec))
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return outcome_of(end.rec), 200

    def _frame(self, item: str | ReasoningDelta | End) -> bytes:
        if isinstance(item, str):
            return self.wire.piece(item)
        return self.wire.reasoning(item) if isinstance(item, ReasoningDelta) else b""

    async def _whole(self, scope, receive, send) -> tuple[str, int]:
        item = await self.gen.get()
        while not isinstance(item, End):
            item = await self.gen.get()
        response = self.wire.whole(item.rec)
        await response(scope, receive, send)
        return outcome_of(item.rec), response.status_code


def outcome_of(rec: Recorder) -> str:
    if rec.status == "error" and rec.exception is not None:
        return f"error:{type(rec.exception).__name__}"
    return rec.status


def write_log(
    fields: dict, gen: Generation | None, outcome: str, status: int, seconds: float, level: int = logging.INFO
) -> None:
    """The one log line of a request: provider, model, time to first token, tokens, tokens/s, outcome."""
    line = dict(fields)
    if gen is not None:
        m = gen.rec.metrics
        line.update(
            provider=gen.provider.name,
            model=gen.provider.model,
            ttft_ms=m.ttft_ms,
            tokens=m.output_tokens,
            tokens_per_s=m.tokens_per_s,
        )
    line.update(outcome=outcome, status=status, ms=int(seconds * 1000))
    log.log(level, " ".join(f"{k}={_fmt(v)}" for k, v in line.items()))


_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029"\\]')


def _escape(match: re.Match) -> str:
    ch = match.group()
    return "\\" + ch if ch in '"\\' else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def _fmt(value) -> str:
    """One value of a log line. Control characters (CR, LF, ESC...), quotes and backslashes are
    escaped, so a request path can't forge lines or colour the terminal."""
    text = _UNSAFE.sub(_escape, "-" if value is None else str(value))
    return f'"{text}"' if (" " in text or "=" in text or not text) else text

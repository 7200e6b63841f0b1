"""Serving a durable generation as SSE: replay its log after a sequence number, then follow it live.

The generation runs on its own (`generation`); this response is only a viewer, so a client that
goes away stops nothing but its own reading. Reads run in worker threads (the database may be
PostgreSQL); between reads the response sleeps on an asyncio event that the log's wake-ups set
(in-process appends, or LISTEN/NOTIFY from other replicas), with the log's poll time as the bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio
from starlette.responses import Response

from .. import errors
from ..errors import ResponseStreamingError
from ..generation import Chunk, Generations
from ..wire.sse import sse_comment
from .generation import write_log

KEEPALIVE = 15.0  # seconds of silence before a comment line keeps proxies from closing the stream


class FollowResponse(Response):
    """Streams the chunks of `gid` after `after` as SSE, framed by `frame(chunk)`, until the terminal chunk.

    `early_errors`: a generation whose first chunk is an error (nothing was written) is answered with
    that error's HTTP status and `error_response`, as a fresh `POST /v1/stream` does; a re-attach
    always gets its 200 stream.
    """

    def __init__(
        self,
        gens: Generations,
        gid: str,
        after: int,
        frame: Callable[[Chunk], bytes],
        error_response: Callable[[ResponseStreamingError], Response],
        early_errors: bool,
        log_fields: dict,
    ) -> None:
        self.gens, self.gid, self.after = gens, gid, after
        self.frame, self.error_response, self.early_errors = frame, error_response, early_errors
        self.log_fields = log_fields
        self.status_code, self.background, self.raw_headers = 200, None, []

    async def __call__(self, scope, receive, send) -> None:
        scope["rs.logged"] = True  # this response writes the request's log line itself
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        unsubscribe = self.gens.log.hub.waker.subscribe(self.gid, lambda: loop.call_soon_threadsafe(self._wake.set))
        outcome, status = "detached", 200  # the client left first: the generation goes on
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, tg.cancel_scope)
                outcome, status = await self._stream(scope, receive, send)
                tg.cancel_scope.cancel()
        finally:
            unsubscribe()
            info = self.gens.get(self.gid)
            fields = dict(self.log_fields, generation=self.gid, after=self.after)
            if info is not None:
                fields.update(
                    provider=info.provider,
                    model=info.model,
                    ttft_ms=info.metrics.get("ttft_ms"),
                    tokens=info.metrics.get("output_tokens"),
                )
            write_log(fields, None, outcome, status, time.monotonic() - started)

    async def _watch(self, receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()  # stop reading; the generation is not ours to stop

    async def _next(self, after: int) -> list[Chunk]:
        """The chunks after `after`, waiting (one poll at most) for some; [] if none came."""
        self._wake.clear()
        chunks = await anyio.to_thread.run_sync(self.gens.read, self.gid, after)
        if chunks:
            return chunks
        with anyio.move_on_after(self.gens.log.poll):
            await self._wake.wait()
        return await anyio.to_thread.run_sync(self.gens.read, self.gid, after)

    async def _stream(self, scope, receive, send) -> tuple[str, int]:
        after, began, last_sent = self.after, False, time.monotonic()
        if not self.early_errors:
            await self._start(send)
            began = True
        while True:
            chunks = await self._next(after)
            if not chunks:
                info = await anyio.to_thread.run_sync(self.gens.get, self.gid)
                if info is None or not info.running:  # ended (its terminal chunk is before `after`) or expired
                    chunks = await anyio.to_thread.run_sync(self.gens.read, self.gid, after)
                    if not chunks:
                        if not began:
                            await self._start(send)
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                        return (info.status if info else "expired"), 200
                elif began and time.monotonic() - last_sent > KEEPALIVE:
                    await send({"type": "http.response.body", "body": sse_comment("keep-alive"), "more_body": True})
                    last_sent = time.monotonic()
                    continue
                else:
                    continue
            if not began:
                first = chunks[0]
                if first.kind == "error" and after == 0:  # failed before any text: a real HTTP status
                    response = self.error_response(rebuild_error(first.data))
                    await response(scope, receive, send)
                    return f"error:{first.data.get('type')}", response.status_code
                await self._start(send)
                began = True
            end = chunks[-1] if chunks[-1].terminal else None
            body = b"".join(self.frame(c) for c in chunks)
            await send({"type": "http.response.body", "body": body, "more_body": end is None})
            last_sent, after = time.monotonic(), chunks[-1].seq
            if end is not None:
                return end.data.get("status", end.kind), 200

    async def _start(self, send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-generation-id", self.gid.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


def rebuild_error(data: dict) -> ResponseStreamingError:
    """The error an `error` chunk describes, as the class it was raised as (its name is in the chunk)."""
    cls = getattr(errors, str(data.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, ResponseStreamingError)):
        cls = ResponseStreamingError
    err = cls(data.get("message") or "The answer failed.")
    err.status = int(data.get("http_status") or cls.status)
    return err

"""Request plumbing shared by every endpoint: JSON bodies, the size and time limits, the per-request log line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import RequestTimeout, RequestTooLarge, ResponseStreamingError
from .generation import write_log
from .validate import parse_json

MAX_REQUEST_BYTES = 1 << 20  # 1 MiB: far more than any prompt the embedded model's context can hold


async def read_json(request: Request) -> Any:
    """The body as JSON, or `BadRequest` saying why not."""
    return parse_json(await request.body())


class Guard:
    """ASGI middleware: refuses bodies over `max_bytes` (413) or slower than `body_timeout` seconds
    (408), and writes the log line of every request that does not write its own (generations log
    themselves, with their metrics).

    The size limit is checked on `Content-Length` before anything is read, and again on the bytes
    that really arrive (a chunked body has no length). The time limit covers the whole body, so a
    client trickling a byte a second can't hold a connection (and its request) open.
    """

    def __init__(
        self, app, max_bytes: int, render: Callable[[str, ResponseStreamingError], Response], body_timeout: float = 30.0
    ) -> None:
        self.app, self.max_bytes, self.render, self.body_timeout = app, max_bytes, render, body_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), 500
        path = scope.get("path", "")

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        seen, body_done = 0, False

        async def counted_receive():
            nonlocal seen, body_done
            if body_done:  # after the body, the next message is the client leaving: no deadline
                return await receive()
            left = started + self.body_timeout - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body took longer than {self.body_timeout:g} s to arrive (setting RS_BODY_TIMEOUT)."
                ) from None
            seen += len(message.get("body", b""))
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if seen > self.max_bytes:
                raise self.too_large()
            return message

        try:
            length = dict(scope.get("headers", [])).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_bytes:
                scope["rs.error"] = "RequestTooLarge"
                await self.render(path, self.too_large())(scope, receive, send_status)
            else:
                await self.app(scope, counted_receive, send_status)
        finally:
            if not scope.get("rs.logged"):
                error = scope.get("rs.error")
                outcome = f"error:{error}" if error else ("ok" if status < 400 else "rejected")
                level = 10 if path == "/health" and status == 200 else 20  # probes: DEBUG, not INFO
                write_log(
                    {"api": api_of(path), "method": scope.get("method"), "path": path},
                    None,
                    outcome,
                    status,
                    time.monotonic() - started,
                    level=level,
                )

    def too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"The request body is larger than {self.max_bytes} bytes.")


def api_of(path: str) -> str:
    """Which API's error shape a path answers in."""
    if path.startswith("/model/"):
        return "bedrock"
    if path.startswith("/v1/stream"):
        return "events"
    return "openai"

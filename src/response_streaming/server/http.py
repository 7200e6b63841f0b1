"""Request plumbing shared by every endpoint: JSON bodies, the size limit, the per-request log line."""
from __future__ import annotations

import json
import time
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, RequestTooLarge, ResponseStreamingError
from .generation import write_log

MAX_REQUEST_BYTES = 1 << 20  # 1 MiB: far more than any prompt the embedded model's context can hold


async def read_json(request: Request):
    """The body as JSON, or `BadRequest` saying why not."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRequest(f"The request body is not valid JSON ({err}).") from None


class Guard:
    """ASGI middleware: refuses bodies over `max_bytes` (413), and writes the log line of every
    request that does not write its own (generations log themselves, with their metrics).

    The limit is checked on `Content-Length` before anything is read, and again on the bytes that
    really arrive (a chunked body has no length).
    """

    def __init__(self, app, max_bytes: int, render: Callable[[str, ResponseStreamingError], Response]) -> None:
        self.app, self.max_bytes, self.render = app, max_bytes, render

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

        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
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
                write_log({"api": api_of(path), "method": scope.get("method"), "path": path}, None, outcome, status,
                          time.monotonic() - started, level=level)

    def too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"The request body is larger than {self.max_bytes} bytes.")


def api_of(path: str) -> str:
    """Which API's error shape a path answers in."""
    if path.startswith("/model/"):
        return "bedrock"
    if path.startswith("/v1/stream"):
        return "events"
    return "openai"

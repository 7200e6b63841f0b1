"""Server-sent events, encoding side (WHATWG HTML, "server-sent events"). Pure: strings in, bytes out.

An event is `field: value` lines ended by a blank line; a value with newlines becomes one `data:`
line per line. Decoding is `httpx-sse`'s (our OpenAI-compatible provider) or a client's own.
"""

from __future__ import annotations

import json


def _json(obj) -> str:
    # Compact, and not ASCII-escaped: SSE is UTF-8 and clients decode it as such.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse_event(data: str, event: str | None = None) -> bytes:
    """One event. Each line of `data` gets its own `data:` field, so newlines survive the trip."""
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse_json(obj, event: str | None = None) -> bytes:
    return sse_event(_json(obj), event)


def sse_comment(text: str = "") -> bytes:
    """A comment line: ignored by every client, keeps idle proxies from closing the connection."""
    return f": {text}\n\n".encode()

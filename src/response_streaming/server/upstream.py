"""A cap on concurrent streams to a remote provider (RS_MAX_UPSTREAM_STREAMS).

The embedded model has its own wait queue (RS_QUEUE_SIZE); a remote provider has none, so without a
cap every client connection becomes one more open stream on the operator's account. Wrapping the
provider (rather than counting in the routes) ties the slot to the provider stream's own lifetime:
it is taken when the stream starts and given back when the stream is closed, however it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from ..errors import Throttled
from ..events import Event, Message, Params, Provider

REMOTE = ("bedrock", "openai")  # providers whose streams cost an upstream connection (and money)


class Bounded:
    """`provider` with at most `limit` streams open at once; one more is refused with `Throttled` (429)."""

    def __init__(self, provider: Provider, limit: int) -> None:
        self.inner, self.limit = provider, limit
        self.name, self.model = provider.name, provider.model
        self._slots = threading.BoundedSemaphore(limit)

    def __getattr__(self, name: str):  # anything else a caller reads is the provider's own
        return getattr(self.inner, name)

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        if not self._slots.acquire(blocking=False):
            raise Throttled(
                f"{self.limit} streams to {self.name} are already open; try again in a moment "
                "(setting RS_MAX_UPSTREAM_STREAMS)."
            )
        try:
            yield from self.inner.stream(messages, params)
        finally:
            self._slots.release()


def bound(provider: Provider, limit: int) -> Provider:
    return Bounded(provider, limit) if provider.name in REMOTE else provider

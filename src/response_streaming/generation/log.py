"""The generation log: append chunks, read from any offset, wake the readers that wait for more.

The log (rows in `generation_chunks`) is the only source of truth; wake-ups only say "read again".
In one process a `Condition` wakes readers at once. With PostgreSQL every append also sends a
`NOTIFY` in its own transaction (delivered at commit), and one `LISTEN` thread per process and
database turns those into the same in-process wake-ups, so a replica's viewers follow live. A reader
also re-reads after `poll` seconds whatever happens, so a missed notification (a dropped listener
connection, another process on SQLite) only delays it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from ..errors import GenerationNotFound
from ..store import Store, generation_chunks, generations
from .answer import reasoning_meta, write_answer

log = logging.getLogger(__name__)

CHANNEL = "rs_generations"
Kind = Literal["text", "reasoning", "usage", "finish", "error"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One row of the log. `finish` or `error` is the last chunk of a generation (its `data` says how it ended)."""

    seq: int
    kind: Kind
    text: str = ""
    data: dict = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.kind in ("finish", "error")


@dataclass(frozen=True)
class GenerationInfo:
    id: str
    status: str  # running, complete, stopped, error, incomplete, interrupted
    conversation_id: str | None
    message_id: int | None
    provider: str
    model: str
    metrics: dict
    error: str
    owner: str
    principal: str | None
    stop_requested: bool
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class Ending:
    status: str
    error: str
    metrics: dict


class Lost(Exception):
    """The generation is no longer running: another process ended it (it found this one's owner dead)."""


class Waker:
    """Per-generation counters under one Condition: a reader notes the counter, reads, then waits for a change."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}
        self._callbacks: dict[str, set[Callable[[], object]]] = {}

    def version(self, gid: str) -> int:
        with self._cond:
            return self._versions.get(gid, 0)

    def notify(self, gid: str) -> None:
        with self._cond:
            self._versions[gid] = self._versions.get(gid, 0) + 1
            self._cond.notify_all()
            callbacks = list(self._callbacks.get(gid, ()))
        for callback in callbacks:
            callback()

    def subscribe(self, gid: str, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback` (from whichever thread appends) at each wake-up for `gid`, e.g. to set an
        asyncio event with `loop.call_soon_threadsafe`; returns the function that unsubscribes."""
        with self._cond:
            self._callbacks.setdefault(gid, set()).add(callback)

        def unsubscribe() -> None:
            with self._cond:
                left = self._callbacks.get(gid)
                if left is not None:
                    left.discard(callback)
                    if not left:
                        del self._callbacks[gid]

        return unsubscribe

    def wait(self, gid: str, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._versions.get(gid, 0) != seen, timeout)


class _Listener:
    """One `LISTEN` connection (psycopg, autocommit, as `notifies()` wants) for a database in this process."""

    def __init__(self, conninfo: str, hub: _Hub) -> None:
        self.conninfo, self.hub = conninfo, hub
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rs-generation-listen", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        while not self.closed.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self.closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.hub.dispatch(note.payload)
            except Exception as err:  # the readers' poll covers the gap; try again shortly
                if not self.closed.is_set():
                    log.warning("generation listener lost its connection (%s); reconnecting", type(err).__name__)
                    self.closed.wait(1.0)

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)


class _Hub:
    """What every `Log` on one database in this process shares: the waker, the listener, the stop handlers."""

    def __init__(self) -> None:
        self.waker = Waker()
        self.listener: _Listener | None = None
        self.stop_handlers: weakref.WeakSet = weakref.WeakSet()
        self.users = 0

    def dispatch(self, payload: str) -> None:
        if payload.startswith("stop:"):
            for handler in list(self.stop_handlers):
                handler.on_stop_request(payload[5:])
        else:
            self.waker.notify(payload)


_hubs: dict[str, _Hub] = {}
_hubs_lock = threading.Lock()


class Log:
    """Reads and writes one database's generation log. `stopper` (optional) is told of remote Stop requests."""

    def __init__(self, store: Store, stopper=None) -> None:
        self.store = store
        self.pg = store.engine.dialect.name == "postgresql"
        # How long a reader waits before reading again without a wake-up.
        self.poll = 1.0 if self.pg else 0.25
        self.key = store.engine.url.render_as_string(hide_password=False)
        with _hubs_lock:
            hub = _hubs.setdefault(self.key, _Hub())
            hub.users += 1
            if self.pg and hub.listener is None:
                conninfo = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                hub.listener = _Listener(conninfo, hub)
            if stopper is not None:
                hub.stop_handlers.add(stopper)
        self.hub = hub
        self._closed = False

    def close(self) -> None:
        with _hubs_lock:
            if self._closed:
                return
            self._closed = True
            self.hub.users -= 1
            if self.hub.users > 0:
                return
            _hubs.pop(self.key, None)
            listener = self.hub.listener
        if listener is not None:
            listener.close()

    # Reading ------------------------------------------------------------------------------
    def info(self, gid: str) -> GenerationInfo | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(generations).where(generations.c.id == gid)).first()
        return _info(row) if row else None

    def read(self, gid: str, after: int = 0) -> list[Chunk]:
        q = (
            select(
                generation_chunks.c.seq, generation_chunks.c.kind, generation_chunks.c.text, generation_chunks.c.data
            )
            .where(generation_chunks.c.generation_id == gid, generation_chunks.c.seq > after)
            .order_by(generation_chunks.c.seq)
        )
        with self.store.engine.connect() as conn:
            return [Chunk(r.seq, r.kind, r.text, r.data or {}) for r in conn.execute(q)]

    def read_wait(self, gid: str, after: int, wait: float) -> list[Chunk]:
        """Like `read`, but if nothing is there yet, wait up to `wait` seconds for an append (then read once more)."""
        seen = self.hub.waker.version(gid)
        chunks = self.read(gid, after)
        if chunks or wait <= 0:
            return chunks
        self.hub.waker.wait(gid, seen, min(wait, self.poll))
        return self.read(gid, after)

    def follow(self, gid: str, after: int = 0, poll: float | None = None) -> Iterator[Chunk]:
        """Every chunk after `after`, then each new one as it is appended, ending after the terminal one."""
        if self.info(gid) is None:
            raise GenerationNotFound(
                "No such generation: the id is wrong, or it ended longer ago than the "
                "retention time (RS_GENERATION_RETENTION)."
            )
        waker = self.hub.waker
        while True:
            seen = waker.version(gid)  # before reading: an append after the read changes it
            chunks = self.read(gid, after)
            for chunk in chunks:
                yield chunk
                after = chunk.seq
                if chunk.terminal:
                    return
            if not chunks:
                info = self.info(gid)
                if info is None or not info.running:
                    # The terminal chunk is committed with the status: one more read has it.
                    for chunk in self.read(gid, after):
                        yield chunk
                        if chunk.terminal:
                            return
                    return
                waker.wait(gid, seen, self.poll if poll is None else poll)

    # Writing ------------------------------------------------------------------------------
    def append(
        self,
        gid: str,
        first_seq: int,
        chunks: Sequence[tuple[Kind, str, dict]],
        ending: Ending | None = None,
        owner: str | None = None,
    ) -> bool:
        """Append `chunks` numbered from `first_seq` (and end the generation if `ending`) in one transaction.

        Returns whether a Stop was requested (from any process). Raises `Lost` if the generation is no
        longer running, or no longer `owner`'s. Ending also writes the answer into its message, with
        the text of the whole log, so the message always says what the log says.
        """
        with self.store.write() as conn:
            row = conn.execute(select(generations).where(generations.c.id == gid).with_for_update()).first()
            if row is None or row.status != "running" or (owner is not None and row.owner != owner):
                raise Lost(gid)
            if chunks:
                conn.execute(
                    insert(generation_chunks),
                    [
                        {"generation_id": gid, "seq": first_seq + i, "kind": kind, "text": body, "data": data}
                        for i, (kind, body, data) in enumerate(chunks)
                    ],
                )
            if ending is not None:
                _end(conn, row, ending)
            if self.pg:
                conn.execute(text("SELECT pg_notify(:channel, :gid)"), {"channel": CHANNEL, "gid": gid})
        self.hub.waker.notify(gid)
        return bool(row.stop_requested)

    def request_stop(self, gid: str) -> bool:
        """Flag a running generation for Stop; its owner ends it (at once if it is in this process or on PostgreSQL)."""
        with self.store.write() as conn:
            done = conn.execute(
                update(generations)
                .where(generations.c.id == gid, generations.c.status == "running")
                .values(stop_requested=True)
            ).rowcount
            if done and self.pg:
                conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"stop:{gid}"}
                )
        if done:
            for handler in list(self.hub.stop_handlers):  # other instances in this process, on any database
                handler.on_stop_request(gid)
        return bool(done)


def _end(conn: Connection, row, ending: Ending) -> None:
    conn.execute(
        update(generations)
        .where(generations.c.id == row.id)
        .values(status=ending.status, error=ending.error, metrics=ending.metrics, ended_at=datetime.now(UTC))
    )
    if row.message_id is not None:
        found = conn.execute(
            select(generation_chunks.c.kind, generation_chunks.c.text, generation_chunks.c.data)
            .where(generation_chunks.c.generation_id == row.id, generation_chunks.c.kind.in_(("text", "reasoning")))
            .order_by(generation_chunks.c.seq)
        ).all()
        body = "".join(c.text for c in found if c.kind == "text")
        thought = reasoning_meta(Chunk(0, "reasoning", c.text, c.data or {}) for c in found if c.kind == "reasoning")
        write_answer(conn, row.message_id, row.continues, body, ending.status, ending.error, ending.metrics, thought)


def _info(row) -> GenerationInfo:
    return GenerationInfo(
        id=row.id,
        status=row.status,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        provider=row.provider,
        model=row.model,
        metrics=row.metrics or {},
        error=row.error,
        owner=row.owner,
        principal=row.principal,
        stop_requested=bool(row.stop_requested),
        started_at=row.started_at,
        ended_at=row.ended_at,
    )

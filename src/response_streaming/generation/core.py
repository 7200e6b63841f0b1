"""`Generations`: start, stop, follow and read durable generations (one instance per process and database).

A generation outlives whoever asked for it: a page run, an HTTP request, a terminal. Its job runs in
threads of this process; its log and its state live in the database, so any process on the same
database can follow it, read it, or ask it to stop.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..config import Settings, get_settings
from ..errors import ConversationBusy
from ..events import Message, Params, Provider
from ..store import Store, conversations, generations, messages
from .job import Job
from .log import Chunk, GenerationInfo, Log
from .recovery import Sweeper, end_orphan, forget_owner, new_owner, owner_dead, recover

log = logging.getLogger(__name__)

BUSY = (
    "An answer is already being written in this conversation (in another tab or window). "
    "Wait for it to finish or stop it there, then try again."
)


def _now() -> datetime:
    return datetime.now(UTC)


class Generations:
    """Durable generations on `store`'s database. Starts a heartbeat/recovery thread; `close()` (also run
    at exit) saves the generations still running here as `interrupted`."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or get_settings()
        self.owner = new_owner()
        self.log = Log(store, stopper=self)
        self._jobs: dict[str, Job] = {}
        self._reserved: set[str] = set()  # claimed for a conversation, job not started yet
        self._lock = threading.Lock()
        self._closed = False
        try:
            recover(self)  # what a crashed process left running is interrupted now, not in 15 s
        except Exception:
            log.exception("could not recover interrupted generations")
        self.sweeper = Sweeper(self)
        atexit.register(self.close)

    # Starting -----------------------------------------------------------------------------
    def reserve(
        self, conversation_id: str | None = None, principal: str | None = None, provider: str = "", model: str = ""
    ) -> str:
        """Claim a new generation id (and the conversation: at most one runs in each). `start` it or `cancel` it.

        Raises `ConversationBusy` when one is running there, unless its owner is dead: then it is
        ended as interrupted first, so a conversation whose process was killed takes a prompt at once.
        """
        gid = secrets.token_urlsafe(24)  # 192 random bits: the id is the capability to attach or stop
        now = _now()
        row: dict[str, object] = dict(
            id=gid,
            conversation_id=conversation_id,
            message_id=None,
            continues=False,
            owner=self.owner,
            status="running",
            stop_requested=False,
            heartbeat_at=now,
            started_at=now,
            provider=provider,
            model=model,
            error="",
            metrics={},
            principal=principal,
        )
        with self._lock:
            self._reserved.add(gid)
        if self._insert(row) or (self._free_orphaned(conversation_id) and self._insert(row)):
            return gid
        with self._lock:
            self._reserved.discard(gid)
        raise ConversationBusy(BUSY)

    def _insert(self, row: dict) -> bool:
        """Insert a generation row; False if its conversation already has a running one (the unique index)."""
        try:
            with self.store.write() as conn:
                conn.execute(insert(generations).values(**row))
            return True
        except IntegrityError:
            return False

    def _free_orphaned(self, conversation_id: str | None) -> bool:
        q = select(generations.c.id, generations.c.owner).where(
            generations.c.conversation_id == conversation_id, generations.c.status == "running"
        )
        with self.store.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return True  # it ended meanwhile
        if row.owner != self.owner and owner_dead(row.owner):
            return end_orphan(self.log, row.id)
        return False

    def cancel(self, gid: str) -> None:
        """Drop a reservation that will not start (the caller failed before the model was asked)."""
        with self._lock:
            self._reserved.discard(gid)
        with self.store.write() as conn:
            conn.execute(
                delete(generations).where(
                    generations.c.id == gid, generations.c.owner == self.owner, generations.c.provider == ""
                )
            )

    def start(
        self,
        provider: Provider,
        messages_: Sequence[Message],
        params: Params,
        *,
        conversation_id: str | None = None,
        message_id: int | None = None,
        continues: bool = False,
        principal: str | None = None,
        generation_id: str | None = None,
    ) -> str:
        """Start a generation; returns its id at once (the job runs in its own threads).

        With `conversation_id`, the assistant message is created now with status `streaming` and
        `meta["generation_id"]` (or, with `message_id`, that message becomes streaming: `continues=True`
        appends the new text to it when the generation ends).
        """
        if generation_id is None and conversation_id is None and message_id is None:
            # No message to link (HTTP, CLI): one transaction before the model is asked.
            gid = self.reserve(None, principal, provider.name, provider.model)
        else:
            gid = generation_id or self.reserve(conversation_id, principal)
            try:
                message_id = self._link_message(gid, provider, params, conversation_id, message_id, continues)
            except BaseException:
                self.cancel(gid)
                raise
        job = Job(
            self.log,
            gid,
            self.owner,
            provider,
            messages_,
            params,
            self.settings.generation_coalesce_ms / 1000,
            self._on_end,
        )
        with self._lock:
            self._jobs[gid] = job
            self._reserved.discard(gid)
        job.start()
        return gid

    def _link_message(
        self, gid: str, provider: Provider, params: Params, cid: str | None, mid: int | None, continues: bool
    ) -> int | None:
        meta = {"generation_id": gid, "provider": provider.name, "model": provider.model, "params": asdict(params)}
        with self.store.write() as conn:
            if cid is not None and mid is None:
                key = conn.execute(
                    insert(messages).values(
                        conversation_id=cid,
                        role="assistant",
                        content="",
                        status="streaming",
                        error="",
                        meta=meta,
                        created_at=_now(),
                    )
                ).inserted_primary_key
                mid = int(key[0]) if key else None
                conn.execute(update(conversations).where(conversations.c.id == cid).values(updated_at=_now()))
            elif mid is not None:
                old = conn.execute(select(messages.c.meta).where(messages.c.id == mid)).scalar() or {}
                conn.execute(
                    update(messages)
                    .where(messages.c.id == mid)
                    .values(status="streaming", error="", meta={**old, **meta})
                )
            conn.execute(
                update(generations)
                .where(generations.c.id == gid)
                .values(message_id=mid, continues=continues, provider=provider.name, model=provider.model)
            )
        return mid

    def _on_end(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.gid, None)

    # Stopping -----------------------------------------------------------------------------
    def stop(self, gid: str, wait: float = 2.0) -> bool:
        """Stop a running generation, wherever it runs; waits up to `wait` s for it to be saved.
        False if it is not running (ended, unknown)."""
        with self._lock:
            job = self._jobs.get(gid)
        if job is not None:
            job.stop("stopped")
            job.ended.wait(wait)
            return True
        if not self.log.request_stop(gid):
            return False
        info = self.log.info(gid)
        if info is not None and info.running and owner_dead(info.owner):
            end_orphan(self.log, gid)  # nobody would act on the flag
        self.wait(gid, wait)
        return True

    def on_stop_request(self, gid: str) -> None:
        """A Stop asked in another process (or another instance): end the job if it runs here."""
        with self._lock:
            job = self._jobs.get(gid)
        if job is not None:
            job.stop("stopped")

    # Reading ------------------------------------------------------------------------------
    def get(self, gid: str) -> GenerationInfo | None:
        return self.log.info(gid)

    def read(self, gid: str, after: int = 0, wait: float = 0.0) -> list[Chunk]:
        """The chunks after sequence number `after` that exist now. With `wait`, if there are none yet, waits
        up to that many seconds for some (a viewer loop that must get control back, e.g. a Streamlit page)."""
        return self.log.read_wait(gid, after, wait)

    def follow(self, gid: str, after: int = 0) -> Iterator[Chunk]:
        """Everything after `after`, then live, ending after the terminal chunk (`GenerationNotFound` if unknown)."""
        return self.log.follow(gid, after)

    def wait(self, gid: str, timeout: float | None = None) -> GenerationInfo | None:
        """Block until the generation has ended (or `timeout`); returns its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waker = self.log.hub.waker
        while True:
            seen = waker.version(gid)
            info = self.log.info(gid)
            if info is None or not info.running:
                return info
            left = self.log.poll if deadline is None else min(self.log.poll, deadline - time.monotonic())
            if left <= 0:
                return info
            waker.wait(gid, seen, left)

    # Process life -------------------------------------------------------------------------
    def owns(self, gid: str) -> bool:
        with self._lock:
            return gid in self._jobs or gid in self._reserved

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def close(self, wait: float = 5.0) -> None:
        """Save every generation still running here as `interrupted`, then stop the threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        jobs = self.jobs()
        for job in jobs:
            job.stop("interrupted")
        deadline = time.monotonic() + wait
        for job in jobs:
            job.ended.wait(max(0.0, deadline - time.monotonic()))
        self.sweeper.close()
        self.log.close()
        forget_owner(self.owner)


def save_on_sigterm(close) -> bool:
    """On SIGTERM (and SIGINT), first save the running generations (`close()`, in a thread of its own, so
    a signal arriving inside the event loop does not block it), then hand the signal to whoever handled
    it before (a server's own graceful shutdown). Why: a server waits for open streams before it shuts
    down, and a follower's stream only ends when its generation does. Main thread only; False elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous) -> None:
            threading.Thread(target=close, name="rs-generation-save", daemon=False).start()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt

        signal.signal(sig, handler)
    return True


def exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit (atexit hooks run, so running generations are saved as interrupted).
    For processes we own (the CLI); servers have their own SIGTERM handling that ends in a normal exit."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

"""Owner heartbeats, crash recovery and retention.

Every process that runs generations names itself `host:pid:uuid` (host includes the pid namespace,
so two containers sharing a host name are still told apart) and refreshes `heartbeat_at` of its
running generations every few seconds. A running generation whose owner is dead is ended as
`interrupted` (`stopped` if a Stop was asked for) by whichever process notices first, keeping every
chunk of its log as the partial answer:
- on the same host, at once: the owner's pid is gone, or it is this very pid with another uuid (a
  restarted container often gets the same pid);
- anywhere, once its heartbeat is older than `stale` seconds.
Ended generations' chunks (and rows) are deleted after `retention` seconds; their messages stay.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, text, update

from ..store import generation_chunks, generations
from .job import INTERRUPTED, terminal
from .log import CHANNEL, Ending, Log, _end

if TYPE_CHECKING:
    from .core import Generations

log = logging.getLogger(__name__)

PURGE_EVERY = 60.0  # seconds between two retention sweeps
_live_owners: set[str] = set()  # owners alive in this process (several `Generations` may share a pid)


def _host() -> str:
    try:
        return f"{socket.gethostname()}#{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def new_owner() -> str:
    owner = f"{_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    _live_owners.add(owner)
    return owner


def forget_owner(owner: str) -> None:
    _live_owners.discard(owner)


def owner_dead(owner: str) -> bool:
    """True when `owner` surely no longer runs (same host only; elsewhere only the heartbeat can tell)."""
    try:
        host, pid_text, _ = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != _host():
        return False
    if pid == os.getpid():
        return owner not in _live_owners
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def end_orphan(log_: Log, gid: str) -> bool:
    """End a running generation whose owner is gone, with the log as its answer. False if it had ended."""
    with log_.store.write() as conn:
        row = conn.execute(select(generations).where(generations.c.id == gid).with_for_update()).first()
        if row is None or row.status != "running":
            return False
        last = conn.execute(
            select(func.max(generation_chunks.c.seq)).where(generation_chunks.c.generation_id == gid)
        ).scalar()
        last = last or 0
        status = "stopped" if row.stop_requested else "interrupted"
        error = "" if status == "stopped" else INTERRUPTED
        metrics = dict(row.metrics or {})  # as of the owner's last heartbeat; the tokens from the log
        texts = (
            conn.execute(
                select(generation_chunks.c.data).where(
                    generation_chunks.c.generation_id == gid, generation_chunks.c.kind == "text"
                )
            )
            .scalars()
            .all()
        )
        metrics["output_tokens"] = sum((d or {}).get("n", 0) for d in texts)
        if metrics.get("ttft_ms") is None and texts:
            metrics["ttft_ms"] = (texts[0] or {}).get("ttft_ms")
        beat = _utc(row.heartbeat_at)  # the owner was last seen alive then: the answer's span as far as known
        metrics["duration_ms"] = max(
            metrics.get("duration_ms") or 0, int((beat - _utc(row.started_at)).total_seconds() * 1000)
        )
        kind, body, data = terminal(status, error, metrics)
        conn.execute(insert(generation_chunks).values(generation_id=gid, seq=last + 1, kind=kind, text=body, data=data))
        _end(conn, row, Ending(status, error, metrics))
        if log_.pg:
            conn.execute(text("SELECT pg_notify(:c, :g)"), {"c": CHANNEL, "g": gid})
    log_.hub.waker.notify(gid)
    log.warning("generation %s ended as %s: its owner %s is gone", gid, status, row.owner)
    return True


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when  # SQLite keeps no zone; we only write UTC


def recover(gens: Generations) -> int:
    """End every running generation whose owner is dead or silent; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=gens.settings.generation_stale)
    q = select(generations.c.id, generations.c.owner, generations.c.heartbeat_at).where(
        generations.c.status == "running"
    )
    with gens.store.engine.connect() as conn:
        rows = conn.execute(q).all()
    ended = 0
    for gid, owner, beat in rows:
        if owner == gens.owner:
            orphan = not gens.owns(gid)  # e.g. its writer died on a database error
        else:
            orphan = owner_dead(owner) or beat is None or _utc(beat) < cutoff
        if orphan:
            ended += end_orphan(gens.log, gid)
    return ended


def heartbeat(gens: Generations) -> list[str]:
    """Refresh this owner's running generations (with their live metrics); returns those asked to stop."""
    now = datetime.now(UTC)
    jobs = gens.jobs()
    with gens.store.write() as conn:
        conn.execute(
            update(generations)
            .where(generations.c.owner == gens.owner, generations.c.status == "running")
            .values(heartbeat_at=now)
        )
        for job in jobs:
            conn.execute(
                update(generations)
                .where(generations.c.id == job.gid, generations.c.status == "running")
                .values(metrics=job.rec.live_metrics())
            )
    return stop_requests(gens)


def stop_requests(gens: Generations) -> list[str]:
    q = select(generations.c.id).where(
        generations.c.owner == gens.owner, generations.c.status == "running", generations.c.stop_requested.is_(True)
    )
    with gens.store.engine.connect() as conn:
        return list(conn.execute(q).scalars())


def purge(gens: Generations) -> int:
    """Delete the logs (and rows) of generations that ended more than `retention` seconds ago."""
    cutoff = datetime.now(UTC) - timedelta(seconds=gens.settings.generation_retention)
    old = select(generations.c.id).where(generations.c.status != "running", generations.c.ended_at < cutoff)
    with gens.store.write() as conn:
        ids = list(conn.execute(old).scalars())
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            conn.execute(delete(generation_chunks).where(generation_chunks.c.generation_id.in_(part)))
            conn.execute(delete(generations).where(generations.c.id.in_(part)))
    return len(ids)


class Sweeper:
    """A thread per `Generations`: stop requests every second, heartbeat and recovery every `heartbeat` seconds,
    retention every minute."""

    def __init__(self, gens: Generations) -> None:
        self.gens = gens
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rs-generation-sweeper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        every = self.gens.settings.generation_heartbeat
        next_beat, next_purge = time.monotonic() + every, time.monotonic() + PURGE_EVERY
        while not self.closed.wait(min(1.0, every)):
            try:
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + every
                    stops = heartbeat(self.gens)
                    recover(self.gens)
                elif self.gens.jobs():
                    stops = stop_requests(self.gens)
                else:
                    stops = []
                for gid in stops:
                    self.gens.on_stop_request(gid)
                if now >= next_purge:
                    next_purge = now + PURGE_EVERY
                    purge(self.gens)
            except Exception:  # the database may be away for a moment; the next round tries again
                log.exception("generation sweep failed")

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)

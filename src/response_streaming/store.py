"""Conversation history in a SQL database: SQLite by default, PostgreSQL by URL (same code).

The database, not the Streamlit session, is the source of truth: a reload, a restart or a second
replica reads the same rows. Invariants: the user's message is written before the model is called;
the assistant's message is written when its stream ends, whatever the ending, with its status,
its (partial) text, its error and its metrics.

A conversation also carries a short lease (`busy_owner`, `busy_until`) taken while an answer streams,
so a second tab or a second replica can't start another stream in it meanwhile. A lease that its
holder never released (a killed process) simply expires.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import (JSON, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text, create_engine,
                        delete, func, insert, or_, select, text, update)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

conversations = Table(
    "conversations", metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("busy_owner", String(64), nullable=True),  # since schema 2
    Column("busy_until", DateTime(timezone=True), nullable=True),  # since schema 2
)

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(36), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    # user messages are 'complete'; assistant ones end as complete/stopped/error/incomplete.
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("meta", JSON, nullable=False, default=dict),  # metrics, provider, model, parameters
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # since schema 3: ids are never reused (a stale button can't hit a newer answer)
)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))


def _schema_1(conn: Connection) -> None:
    # Frozen copy of the first schema: migrations must not follow later edits of the tables above.
    v1 = MetaData()
    Table("conversations", v1,
          Column("id", String(36), primary_key=True), Column("title", String(200), nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False),
          Column("updated_at", DateTime(timezone=True), nullable=False))
    Table("messages", v1,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("conversation_id", String(36), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True),
          Column("role", String(16), nullable=False), Column("content", Text, nullable=False),
          Column("status", String(16), nullable=False), Column("error", Text, nullable=False, default=""),
          Column("meta", JSON, nullable=False, default=dict), Column("created_at", DateTime(timezone=True), nullable=False))
    v1.create_all(conn)


def _schema_2(conn: Connection) -> None:
    ts = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "TIMESTAMP"
    conn.execute(text("ALTER TABLE conversations ADD COLUMN busy_owner VARCHAR(64)"))
    conn.execute(text(f"ALTER TABLE conversations ADD COLUMN busy_until {ts}"))


def _schema_3(conn: Connection) -> None:
    # SQLite reuses the largest rowid after a delete (regenerate deletes the last answer), so a page
    # drawn before a regenerate could act on the new answer. AUTOINCREMENT needs a rebuilt table.
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL sequences never reuse ids
    conn.execute(text(
        "CREATE TABLE messages_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "conversation_id VARCHAR(36) NOT NULL REFERENCES conversations (id) ON DELETE CASCADE, "
        "role VARCHAR(16) NOT NULL, content TEXT NOT NULL, status VARCHAR(16) NOT NULL, error TEXT NOT NULL, "
        "meta JSON NOT NULL, created_at DATETIME NOT NULL)"))
    cols = "id, conversation_id, role, content, status, error, meta, created_at"
    conn.execute(text(f"INSERT INTO messages_v3 ({cols}) SELECT {cols} FROM messages"))
    conn.execute(text("DROP TABLE messages"))
    conn.execute(text("ALTER TABLE messages_v3 RENAME TO messages"))
    conn.execute(text("CREATE INDEX ix_messages_conversation_id ON messages (conversation_id)"))


# Ordered schema migrations; version N is reached by running MIGRATIONS[N-1]. Append, never edit.
MIGRATIONS = [_schema_1, _schema_2, _schema_3]

# Any constant works; it only has to be the same in every replica.
_PG_MIGRATION_LOCK = 0x5253_4D49


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    content: str
    status: str
    error: str
    meta: dict
    created_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        self.migrate()

    def migrate(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas may start together: one migrates, the others wait here and then find nothing to do.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            metadata.create_all(conn, tables=[schema_version])
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(insert(schema_version).values(version=version))

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(schema_version.c.version))).scalar() or 0

    # Conversations -------------------------------------------------------------------------
    def create_conversation(self, title: str = "New chat") -> str:
        cid = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(insert(conversations).values(id=cid, title=_title(title), created_at=_now(), updated_at=_now()))
        return cid

    def list_conversations(self, search: str = "") -> list[dict]:
        q = select(conversations.c.id, conversations.c.title).order_by(conversations.c.updated_at.desc())
        if search.strip():
            # A title search, literal: % and _ typed by the user are not wildcards.
            pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(conversations.c.title.ilike(pattern, escape="\\"))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def get_conversation(self, cid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(conversations).where(conversations.c.id == cid)).first()
        return dict(row._mapping) if row else None

    def rename_conversation(self, cid: str, title: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.id == cid).values(title=_title(title)))

    def delete_conversation(self, cid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.conversation_id == cid))
            conn.execute(delete(conversations).where(conversations.c.id == cid))

    # The streaming lease -------------------------------------------------------------------
    def claim(self, cid: str, owner: str, seconds: float) -> bool:
        """Take (or renew) the conversation's lease; False when someone else holds a live one."""
        now = _now()
        with self.engine.begin() as conn:
            done = conn.execute(update(conversations).where(
                conversations.c.id == cid,
                or_(conversations.c.busy_until.is_(None), conversations.c.busy_until < now,
                    conversations.c.busy_owner == owner),
            ).values(busy_owner=owner, busy_until=now + timedelta(seconds=seconds)))
        return done.rowcount == 1

    def renew(self, cid: str, owner: str, seconds: float) -> None:
        """Extend a lease this owner still holds; never take back one that was released (Stop)."""
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.id == cid, conversations.c.busy_owner == owner)
                         .values(busy_until=_now() + timedelta(seconds=seconds)))

    def release(self, cid: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.id == cid, conversations.c.busy_owner == owner)
                         .values(busy_owner=None, busy_until=None))

    def busy(self, cid: str) -> bool:
        """Whether an answer is streaming in this conversation right now (in any tab or replica)."""
        with self.engine.connect() as conn:
            until = conn.execute(select(conversations.c.busy_until).where(conversations.c.id == cid)).scalar()
        if until is None:
            return False
        if until.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
            until = until.replace(tzinfo=timezone.utc)
        return until > _now()

    # Messages ------------------------------------------------------------------------------
    def add_message(self, cid: str, role: str, content: str, status: str = "complete", error: str = "",
                    meta: dict | None = None) -> int:
        with self.engine.begin() as conn:
            mid = conn.execute(insert(messages).values(
                conversation_id=cid, role=role, content=content, status=status, error=error,
                meta=_jsonable(meta), created_at=_now())).inserted_primary_key[0]
            conn.execute(update(conversations).where(conversations.c.id == cid).values(updated_at=_now()))
        return mid

    def update_message(self, mid: int, content: str, status: str, error: str, meta: dict) -> None:
        """Rewrite an answer in place (a continued answer grows; its id and position stay)."""
        with self.engine.begin() as conn:
            cid = conn.execute(select(messages.c.conversation_id).where(messages.c.id == mid)).scalar()
            conn.execute(update(messages).where(messages.c.id == mid).values(
                content=content, status=status, error=error, meta=_jsonable(meta)))
            if cid:
                conn.execute(update(conversations).where(conversations.c.id == cid).values(updated_at=_now()))

    def messages(self, cid: str) -> list[StoredMessage]:
        q = select(messages).where(messages.c.conversation_id == cid).order_by(messages.c.id)
        with self.engine.connect() as conn:
            return [StoredMessage(r.id, r.role, r.content, r.status, r.error, r.meta or {}, r.created_at)
                    for r in conn.execute(q)]

    def delete_messages_from(self, cid: str, message_id: int) -> None:
        """Drop a message and everything after it (regenerate, edit and resend)."""
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.conversation_id == cid, messages.c.id >= message_id))


def _title(title: str) -> str:
    return " ".join(title.split())[:200] or "Untitled"


def _jsonable(meta: dict | None) -> dict:
    return json.loads(json.dumps(meta or {}, default=str))

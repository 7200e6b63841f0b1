"""Conversation history in a SQL database: SQLite by default, PostgreSQL by URL.

The database, not the Streamlit session, is the source of truth: a reload, a restart or a second
replica reads the same rows. Invariants: the user's message is written before the model is called;
the assistant's message is written when its stream ends, whatever the ending, with its status,
its (partial) text, its error and its metrics.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (JSON, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text, create_engine,
                        delete, func, insert, select, update)
from sqlalchemy.engine import Engine

metadata = MetaData()

conversations = Table(
    "conversations", metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

# Ordered schema migrations; version N is reached by running MIGRATIONS[N-1]. Append, never edit.
MIGRATIONS = [
    lambda conn: metadata.create_all(conn, tables=[conversations, messages]),
]


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    content: str
    status: str
    error: str
    meta: dict


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
            metadata.create_all(conn, tables=[schema_version])
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(insert(schema_version).values(version=version))

    # Conversations -------------------------------------------------------------------------
    def create_conversation(self, title: str = "New chat") -> str:
        cid = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(insert(conversations).values(id=cid, title=title[:200], created_at=_now(), updated_at=_now()))
        return cid

    def list_conversations(self, search: str = "") -> list[dict]:
        q = select(conversations.c.id, conversations.c.title).order_by(conversations.c.updated_at.desc())
        if search:
            q = q.where(conversations.c.title.ilike(f"%{search}%"))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def get_conversation(self, cid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(conversations).where(conversations.c.id == cid)).first()
        return dict(row._mapping) if row else None

    def rename_conversation(self, cid: str, title: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.id == cid).values(title=title.strip()[:200] or "Untitled"))

    def delete_conversation(self, cid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.conversation_id == cid))
            conn.execute(delete(conversations).where(conversations.c.id == cid))

    # Messages ------------------------------------------------------------------------------
    def add_message(self, cid: str, role: str, content: str, status: str = "complete", error: str = "",
                    meta: dict | None = None) -> int:
        with self.engine.begin() as conn:
            mid = conn.execute(insert(messages).values(
                conversation_id=cid, role=role, content=content, status=status, error=error,
                meta=json.loads(json.dumps(meta or {}, default=str)), created_at=_now())).inserted_primary_key[0]
            conn.execute(update(conversations).where(conversations.c.id == cid).values(updated_at=_now()))
        return mid

    def messages(self, cid: str) -> list[StoredMessage]:
        q = select(messages).where(messages.c.conversation_id == cid).order_by(messages.c.id)
        with self.engine.connect() as conn:
            return [StoredMessage(r.id, r.role, r.content, r.status, r.error, r.meta or {}) for r in conn.execute(q)]

    def delete_messages_from(self, cid: str, message_id: int) -> None:
        """Drop a message and everything after it (regenerate, edit and resend)."""
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.conversation_id == cid, messages.c.id >= message_id))

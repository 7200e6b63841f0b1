"""Conversation history in a SQL database: SQLite by default, PostgreSQL by URL (same code).

The database, not the Streamlit session, is the source of truth: a reload, a restart or a second
replica reads the same rows. Invariants: the user's message is written before the model is called;
the assistant's message is created when its generation starts (status `streaming`) and written once
when it ends, whatever the ending, with its status, its (partial) text, its error and its metrics.

The tables of durable generations live here too (`generations`, `generation_chunks`; the package
`generation` reads and writes them): a conversation is busy exactly while one of its generations
runs, so a second tab or replica can't start another one meanwhile (a unique index says so).

SQLite runs in WAL mode (readers never wait for the one writer) with a busy timeout, and write
transactions start with `BEGIN IMMEDIATE`: a deferred one that read first and then writes fails at
once with "database is locked" when another writer got in between, whatever the timeout.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine

from .errors import ConversationNotFound

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Since schema 5: who it belongs to when sign-in is on (`users.principal`: OIDC issuer + subject); None
    # for a conversation made without sign-in (the single-user app sees those, signed-in users don't).
    Column("owner", String(512), nullable=True, index=True),
    # busy_owner / busy_until (schema 2 and 3) were the streaming lease; schema 4 replaced it by `generations`.
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "conversation_id", String(36), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True
    ),
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

# Since schema 4: one row per generation (a job that streams an answer), and its append-only log.
generations = Table(
    "generations",
    metadata,
    Column("id", String(64), primary_key=True),  # unguessable (secrets.token_urlsafe)
    Column("conversation_id", String(36), nullable=True),  # None: a generation outside the history (HTTP, CLI)
    Column("message_id", Integer, nullable=True),  # the assistant message it writes when it ends
    Column("continues", Boolean, nullable=False, default=False),  # appends to message_id's text (Continue)
    Column("owner", String(200), nullable=False),  # the process running it: "host:pid:uuid"
    # running, then complete / stopped / error / incomplete / interrupted
    Column("status", String(16), nullable=False),
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("provider", String(64), nullable=False, default=""),
    Column("model", String(200), nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("metrics", JSON, nullable=False, default=dict),
    # who may attach or stop (None: anyone with the id); 512 since schema 5 (an OIDC issuer + subject)
    Column("principal", String(512), nullable=True),
)
Index("ix_generations_status", generations.c.status)

generation_chunks = Table(
    "generation_chunks",
    metadata,
    Column("generation_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3... without gaps
    Column("kind", String(16), nullable=False),  # text, reasoning, usage, finish, error
    Column("text", Text, nullable=False, default=""),
    Column("data", JSON, nullable=False, default=dict),
)


def _schema_1(conn: Connection) -> None:
    # Frozen copy of the first schema: migrations must not follow later edits of the tables above.
    v1 = MetaData()
    Table(
        "conversations",
        v1,
        Column("id", String(36), primary_key=True),
        Column("title", String(200), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "messages",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(
            "conversation_id",
            String(36),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("role", String(16), nullable=False),
        Column("content", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("error", Text, nullable=False, default=""),
        Column("meta", JSON, nullable=False, default=dict),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
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
    conn.execute(
        text(
            "CREATE TABLE messages_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "conversation_id VARCHAR(36) NOT NULL REFERENCES conversations (id) ON DELETE CASCADE, "
            "role VARCHAR(16) NOT NULL, content TEXT NOT NULL, status VARCHAR(16) NOT NULL, error TEXT NOT NULL, "
            "meta JSON NOT NULL, created_at DATETIME NOT NULL)"
        )
    )
    cols = "id, conversation_id, role, content, status, error, meta, created_at"
    conn.execute(text(f"INSERT INTO messages_v3 ({cols}) SELECT {cols} FROM messages"))
    conn.execute(text("DROP TABLE messages"))
    conn.execute(text("ALTER TABLE messages_v3 RENAME TO messages"))
    conn.execute(text("CREATE INDEX ix_messages_conversation_id ON messages (conversation_id)"))


def _schema_4(conn: Connection) -> None:
    # Durable generations; the conversation lease columns go: a running generation is the lease now.
    v4 = MetaData()
    ts = DateTime(timezone=True)
    gens = Table(
        "generations",
        v4,
        Column("id", String(64), primary_key=True),
        Column("conversation_id", String(36)),
        Column("message_id", Integer),
        Column("continues", Boolean, nullable=False),
        Column("owner", String(200), nullable=False),
        Column("status", String(16), nullable=False),
        Column("stop_requested", Boolean, nullable=False),
        Column("heartbeat_at", ts, nullable=False),
        Column("started_at", ts, nullable=False),
        Column("ended_at", ts),
        Column("provider", String(64), nullable=False),
        Column("model", String(200), nullable=False),
        Column("error", Text, nullable=False),
        Column("metrics", JSON, nullable=False),
        Column("principal", String(200)),
    )
    Index("ix_generations_status", gens.c.status)
    running = text("status = 'running'")
    # At most one running generation per conversation, whichever tab or replica starts it.
    Index("ux_generations_running", gens.c.conversation_id, unique=True, sqlite_where=running, postgresql_where=running)
    Table(
        "generation_chunks",
        v4,
        Column("generation_id", String(64), primary_key=True),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("kind", String(8), nullable=False),
        Column("text", Text, nullable=False),
        Column("data", JSON, nullable=False),
    )
    v4.create_all(conn)
    conn.execute(text("ALTER TABLE conversations DROP COLUMN busy_owner"))
    conn.execute(text("ALTER TABLE conversations DROP COLUMN busy_until"))


def _schema_5(conn: Connection) -> None:
    # Sign-in: each conversation belongs to a user. Existing rows keep NULL (made by the single-user app).
    conn.execute(text("ALTER TABLE conversations ADD COLUMN owner VARCHAR(512)"))
    conn.execute(text("CREATE INDEX ix_conversations_owner ON conversations (owner)"))
    if conn.dialect.name == "postgresql":  # SQLite doesn't enforce VARCHAR lengths
        conn.execute(text("ALTER TABLE generations ALTER COLUMN principal TYPE VARCHAR(512)"))


def _schema_6(conn: Connection) -> None:
    # Chunk kinds longer than 8 characters ("reasoning"). SQLite doesn't enforce a VARCHAR's length.
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE generation_chunks ALTER COLUMN kind TYPE VARCHAR(16)"))


# Ordered schema migrations; version N is reached by running MIGRATIONS[N-1]. Append, never edit.
MIGRATIONS = [_schema_1, _schema_2, _schema_3, _schema_4, _schema_5, _schema_6]

NOT_FOUND = "This conversation doesn't exist (any more), or it belongs to another user."

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
    return datetime.now(UTC)


class Store:
    """The history. `owner` None: every conversation (the single-user app, the CLI). `scoped(owner)`: a
    view of the same database where every query sees, changes and creates only that owner's
    conversations; anyone else's look exactly like missing ones (`ConversationNotFound`)."""

    owner: str | None = None

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Many generations append at once: room for more connections than SQLAlchemy's default 5 + 10.
        self.engine: Engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
        if self.engine.dialect.name == "sqlite":
            _sqlite_setup(self.engine)
        self.migrate()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it takes the write lock first: `BEGIN IMMEDIATE`)."""
        with self.engine.connect().execution_options(rs_write=True) as conn, conn.begin():
            yield conn

    def migrate(self) -> None:
        with self.write() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas may start together: one migrates, the others wait here and then find nothing to do.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            metadata.create_all(conn, tables=[schema_version])
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(insert(schema_version).values(version=version))

    def scoped(self, owner: str | None) -> Store:
        """The same database seen by `owner` (None: unscoped, as this store)."""
        view = copy.copy(self)  # shares the engine and its pool
        view.owner = owner
        return view

    def _mine(self):
        """The WHERE clause limiting a query to this store's owner (always true when unscoped)."""
        return true() if self.owner is None else conversations.c.owner == self.owner

    def _check(self, conn: Connection, cid: str) -> None:
        """Refuse to touch a conversation that is not this owner's (or that doesn't exist).

        Checked inside `conn`'s transaction, so nothing changes between the check and the write.
        """
        if self.owner is None:
            return
        if conn.execute(select(conversations.c.id).where(conversations.c.id == cid, self._mine())).first() is None:
            raise ConversationNotFound(NOT_FOUND)

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(schema_version.c.version))).scalar() or 0

    # Conversations -------------------------------------------------------------------------
    def create_conversation(self, title: str = "New chat") -> str:
        cid = str(uuid.uuid4())
        with self.write() as conn:
            conn.execute(
                insert(conversations).values(
                    id=cid, title=_title(title), created_at=_now(), updated_at=_now(), owner=self.owner
                )
            )
        return cid

    def list_conversations(self, search: str = "") -> list[dict]:
        q = (
            select(conversations.c.id, conversations.c.title)
            .where(self._mine())
            .order_by(conversations.c.updated_at.desc())
        )
        if search.strip():
            # A title search, literal: % and _ typed by the user are not wildcards.
            pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(conversations.c.title.ilike(pattern, escape="\\"))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def get_conversation(self, cid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(conversations).where(conversations.c.id == cid, self._mine())).first()
        return dict(row._mapping) if row else None

    def rename_conversation(self, cid: str, title: str) -> None:
        with self.write() as conn:
            self._check(conn, cid)
            conn.execute(update(conversations).where(conversations.c.id == cid).values(title=_title(title)))

    def delete_conversation(self, cid: str) -> None:
        with self.write() as conn:
            self._check(conn, cid)
            conn.execute(delete(messages).where(messages.c.conversation_id == cid))
            conn.execute(delete(conversations).where(conversations.c.id == cid))

    def busy(self, cid: str) -> bool:
        """Whether an answer is streaming in this conversation right now (in any tab or replica)."""
        running = select(generations.c.id).where(
            generations.c.conversation_id == cid, generations.c.status == "running"
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(select(exists(running))).scalar())

    # Messages ------------------------------------------------------------------------------
    def add_message(
        self, cid: str, role: str, content: str, status: str = "complete", error: str = "", meta: dict | None = None
    ) -> int:
        with self.write() as conn:
            self._check(conn, cid)
            mid = conn.execute(
                insert(messages).values(
                    conversation_id=cid,
                    role=role,
                    content=content,
                    status=status,
                    error=error,
                    meta=_jsonable(meta),
                    created_at=_now(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]  # always set for an INSERT
            conn.execute(update(conversations).where(conversations.c.id == cid).values(updated_at=_now()))
        return mid

    def update_message(self, mid: int, content: str, status: str, error: str, meta: dict) -> None:
        """Rewrite an answer in place (a continued answer grows; its id and position stay)."""
        with self.write() as conn:
            cid = conn.execute(select(messages.c.conversation_id).where(messages.c.id == mid)).scalar()
            if cid:
                self._check(conn, cid)
            conn.execute(
                update(messages)
                .where(messages.c.id == mid)
                .values(content=content, status=status, error=error, meta=_jsonable(meta))
            )
            if cid:
                conn.execute(update(conversations).where(conversations.c.id == cid).values(updated_at=_now()))

    def messages(self, cid: str) -> list[StoredMessage]:
        q = select(messages).where(messages.c.conversation_id == cid).order_by(messages.c.id)
        if self.owner is not None:  # someone else's conversation has no messages for this owner
            q = q.where(messages.c.conversation_id.in_(select(conversations.c.id).where(self._mine())))
        with self.engine.connect() as conn:
            return [
                StoredMessage(r.id, r.role, r.content, r.status, r.error, r.meta or {}, r.created_at)
                for r in conn.execute(q)
            ]

    def delete_messages_from(self, cid: str, message_id: int) -> None:
        """Drop a message and everything after it (regenerate, edit and resend)."""
        with self.write() as conn:
            self._check(conn, cid)
            conn.execute(delete(messages).where(messages.c.conversation_id == cid, messages.c.id >= message_id))


def _sqlite_setup(engine: Engine) -> None:
    # pysqlite's own transaction handling would send BEGIN late and deferred; we send it ourselves.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")  # wait for the writer rather than fail
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(
            "PRAGMA synchronous = NORMAL"
        )  # WAL keeps a killed process's commits; only power loss may lose the last
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("rs_write") else "BEGIN")


def _title(title: str) -> str:
    return " ".join(title.split())[:200] or "Untitled"


def _jsonable(meta: dict | None) -> dict:
    return json.loads(json.dumps(meta or {}, default=str))

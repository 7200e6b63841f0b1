"""The history store on SQLite: migrations, conversations, messages, one running answer per conversation."""

from __future__ import annotations

import sqlite3
import time

import pytest

from response_streaming.errors import ConversationBusy
from response_streaming.generation import Generations
from response_streaming.store import MIGRATIONS, Store


def url(tmp_path, name="history.sqlite3") -> str:
    return f"sqlite:///{tmp_path / name}"


def test_a_fresh_database_gets_every_migration_once(tmp_path):
    store = Store(url(tmp_path))
    assert store.schema_version() == len(MIGRATIONS)
    Store(url(tmp_path))  # a restart (or a second replica) finds nothing to do
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        versions = [v for (v,) in db.execute("select version from schema_version order by version")]
        columns = {row[1] for row in db.execute("pragma table_info(conversations)")}
        tables = {name for (name,) in db.execute("select name from sqlite_master where type = 'table'")}
        mode = db.execute("pragma journal_mode").fetchone()[0]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert not {"busy_owner", "busy_until"} & columns  # the old lease: a running generation is the lease now
    assert {"generations", "generation_chunks"} <= tables and mode == "wal"


def test_a_version_1_database_is_upgraded_and_keeps_its_rows(tmp_path):
    # Build the first schema exactly as the first release did, with a row in it.
    path = url(tmp_path)
    from sqlalchemy import create_engine, insert

    from response_streaming import store as store_module

    engine = create_engine(path)
    with engine.begin() as conn:
        store_module.metadata.create_all(conn, tables=[store_module.schema_version])
        MIGRATIONS[0](conn)
        conn.execute(insert(store_module.schema_version).values(version=1))
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        db.execute("insert into conversations values ('c1', 'Old chat', '2025-01-01 00:00:00', '2025-01-01 00:00:00')")
        db.execute(
            "insert into messages (conversation_id, role, content, status, error, meta, created_at) "
            "values ('c1', 'user', 'hello', 'complete', '', '{}', '2025-01-01 00:00:00')"
        )

    store = Store(path)
    assert store.schema_version() == len(MIGRATIONS)
    assert [c["title"] for c in store.list_conversations()] == ["Old chat"]
    assert [m.content for m in store.messages("c1")] == ["hello"]
    store.delete_messages_from("c1", 1)
    assert store.add_message("c1", "user", "again") == 2  # ids kept growing after the rebuild
    gens = Generations(store)
    try:
        gens.reserve("c1")
        assert store.busy("c1")
    finally:
        gens.close()


def test_conversations_list_newest_first_search_rename_delete(tmp_path):
    store = Store(url(tmp_path))
    a = store.create_conversation("Cats and dogs")
    b = store.create_conversation("100% sure_thing")
    time.sleep(0.01)
    store.add_message(a, "user", "hi")  # activity moves a conversation to the top
    assert [c["id"] for c in store.list_conversations()] == [a, b]
    assert [c["id"] for c in store.list_conversations("CATS")] == [a]
    # What the user types is literal: % and _ are not wildcards.
    assert [c["id"] for c in store.list_conversations("0% s")] == [b]
    assert store.list_conversations("100_") == []
    store.rename_conversation(a, "  Felines \n only ")
    assert store.get_conversation(a)["title"] == "Felines only"
    store.rename_conversation(a, "   ")
    assert store.get_conversation(a)["title"] == "Untitled"
    store.delete_conversation(a)
    assert store.get_conversation(a) is None and store.messages(a) == []
    assert [c["id"] for c in store.list_conversations()] == [b]


def test_messages_keep_status_error_and_metadata_and_can_be_rewritten(tmp_path):
    store = Store(url(tmp_path))
    cid = store.create_conversation("t")
    store.add_message(cid, "user", "q")
    mid = store.add_message(
        cid,
        "assistant",
        "part",
        status="error",
        error="It broke.",
        meta={"metrics": {"ttft_ms": 12}, "provider": "replay"},
    )
    [_, answer] = store.messages(cid)
    assert (answer.status, answer.error, answer.meta["metrics"]["ttft_ms"]) == ("error", "It broke.", 12)
    assert answer.created_at is not None
    store.update_message(mid, "part and more", "complete", "", {"provider": "replay", "parts": [1, 2]})
    [_, answer] = store.messages(cid)
    assert (answer.id, answer.content, answer.status, answer.meta["parts"]) == (
        mid,
        "part and more",
        "complete",
        [1, 2],
    )
    store.delete_messages_from(cid, mid)
    assert [m.role for m in store.messages(cid)] == ["user"]


def test_one_running_generation_per_conversation_across_replicas(tmp_path):
    a, b = Generations(Store(url(tmp_path))), Generations(Store(url(tmp_path)))  # two replicas, one database
    try:
        cid = a.store.create_conversation("t")
        assert not a.store.busy(cid)
        gid = a.reserve(cid)
        assert b.store.busy(cid)
        with pytest.raises(ConversationBusy):
            b.reserve(cid)
        b.reserve(b.store.create_conversation("u"))  # another conversation is free
        a.cancel(gid)  # the turn failed before the model was asked
        assert not a.store.busy(cid)
        b.reserve(cid)
        assert a.store.busy(cid)
    finally:
        a.close()
        b.close()


def test_message_ids_are_never_reused(tmp_path):
    store = Store(url(tmp_path))
    cid = store.create_conversation("t")
    store.add_message(cid, "user", "q")
    answer = store.add_message(cid, "assistant", "a")
    store.delete_messages_from(cid, answer)
    assert store.add_message(cid, "assistant", "b") > answer

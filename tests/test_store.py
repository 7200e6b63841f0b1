"""The history store on SQLite: migrations, conversations, messages, the streaming lease."""
from __future__ import annotations

import sqlite3
import time

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
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert {"busy_owner", "busy_until"} <= columns


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
        db.execute("insert into messages (conversation_id, role, content, status, error, meta, created_at) "
                   "values ('c1', 'user', 'hello', 'complete', '', '{}', '2025-01-01 00:00:00')")

    store = Store(path)
    assert store.schema_version() == len(MIGRATIONS)
    assert [c["title"] for c in store.list_conversations()] == ["Old chat"]
    assert [m.content for m in store.messages("c1")] == ["hello"]
    store.delete_messages_from("c1", 1)
    assert store.add_message("c1", "user", "again") == 2  # ids kept growing after the rebuild
    assert store.claim("c1", "me", 30) and store.busy("c1")


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
    mid = store.add_message(cid, "assistant", "part", status="error", error="It broke.",
                            meta={"metrics": {"ttft_ms": 12}, "provider": "replay"})
    [_, answer] = store.messages(cid)
    assert (answer.status, answer.error, answer.meta["metrics"]["ttft_ms"]) == ("error", "It broke.", 12)
    assert answer.created_at is not None
    store.update_message(mid, "part and more", "complete", "", {"provider": "replay", "parts": [1, 2]})
    [_, answer] = store.messages(cid)
    assert (answer.id, answer.content, answer.status, answer.meta["parts"]) == (mid, "part and more", "complete", [1, 2])
    store.delete_messages_from(cid, mid)
    assert [m.role for m in store.messages(cid)] == ["user"]


def test_the_lease_admits_one_holder_until_released_or_expired(tmp_path):
    store = Store(url(tmp_path))
    other = Store(url(tmp_path))  # another replica on the same database
    cid = store.create_conversation("t")
    assert not store.busy(cid)
    assert store.claim(cid, "tab-1", 30)
    assert other.busy(cid)
    assert not other.claim(cid, "tab-2", 30)
    assert store.claim(cid, "tab-1", 30)  # the holder renews
    other.release(cid, "tab-2")  # someone else's release changes nothing
    assert store.busy(cid)
    store.release(cid, "tab-1")
    assert not store.busy(cid) and other.claim(cid, "tab-2", 0.05)
    time.sleep(0.1)
    assert not store.busy(cid)  # a holder that died: its lease lapses
    assert store.claim(cid, "tab-1", 30)


def test_renewing_never_takes_back_a_released_lease(tmp_path):
    store = Store(url(tmp_path))
    cid = store.create_conversation("t")
    assert store.claim(cid, "tab-1", 30)
    store.release(cid, "tab-1")  # Stop saved the answer and freed the conversation...
    store.renew(cid, "tab-1", 30)  # ...while the stream's worker was still between two pieces
    assert not store.busy(cid)


def test_message_ids_are_never_reused(tmp_path):
    store = Store(url(tmp_path))
    cid = store.create_conversation("t")
    store.add_message(cid, "user", "q")
    answer = store.add_message(cid, "assistant", "a")
    store.delete_messages_from(cid, answer)
    assert store.add_message(cid, "assistant", "b") > answer

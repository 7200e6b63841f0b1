"""History on a real PostgreSQL server that the test starts itself: migrations, the streaming lease,
and two app replicas on one database showing the same history (in a real headless Chromium)."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect
from test_browser_chat import answer_text, go, send, settled, shows, visible_text, wait_for

from response_streaming.errors import ConversationBusy
from response_streaming.generation import Generations
from response_streaming.store import MIGRATIONS, Store

pytestmark = pytest.mark.postgres


def test_replicas_starting_together_migrate_once(postgres):
    url = postgres()
    stores, errors = [], []

    def start():
        try:
            stores.append(Store(url))
        except Exception as err:  # collected: the assertion below shows it
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 4
    with stores[0].engine.connect() as conn:
        from sqlalchemy import text

        versions = [v for (v,) in conn.execute(text("select version from schema_version order by version"))]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_history_and_the_lease_on_postgres(postgres):
    url = postgres()
    a, b = Store(url), Store(url)  # two replicas
    cid = a.create_conversation("Shared: 100% real")
    a.add_message(cid, "user", "hello")
    mid = a.add_message(cid, "assistant", "hi", status="stopped", meta={"metrics": {"ttft_ms": 5}, "provider": "x"})
    [user, answer] = b.messages(cid)
    assert (user.content, answer.status, answer.meta["metrics"]["ttft_ms"]) == ("hello", "stopped", 5)
    assert [c["id"] for c in b.list_conversations("100% R")] == [cid] and b.list_conversations("100_") == []
    ga, gb = Generations(a), Generations(b)
    try:
        gid = ga.reserve(cid)
        assert b.busy(cid)
        with pytest.raises(ConversationBusy):
            gb.reserve(cid)
        ga.cancel(gid)
        assert not b.busy(cid)
        gb.cancel(gb.reserve(cid))
    finally:
        ga.close()
        gb.close()
    b.delete_messages_from(cid, mid)
    assert a.add_message(cid, "assistant", "again") > mid


@pytest.mark.browser
def test_two_app_replicas_show_the_same_history(postgres, streamlit_server, browser, tmp_path):
    url = postgres()
    story = " ".join(f"w{i}" for i in range(120))
    settings = dict(provider="replay", replay_rate=20, replay_text=story, database_url=url)
    replica_a, replica_b = streamlit_server(**settings), streamlit_server(**settings)
    store = Store(url)
    page_a, page_b = browser.new_context().new_page(), browser.new_context().new_page()
    try:
        page_a.goto(replica_a)
        send(page_a, "Hello from replica A")
        [_, first] = settled(store, 1)
        shows(page_a, first)
        cid = store.list_conversations()[0]["id"]

        page_b.goto(f"{replica_b}/?c={cid}")
        shows(page_b, first)
        expect(page_b.get_by_text("Hello from replica A").first).to_be_visible()
        send(page_b, "And hello from replica B")
        msgs = settled(store, 2)
        shows(page_b, msgs[-1])

        page_a.reload()
        shows(page_a, msgs[-1])
        expect(page_a.locator(".stChatMessage")).to_have_count(4)
        expect(page_a.get_by_role("button", name="Hello from replica A")).to_be_visible()  # the sidebar list

        # While A streams, B (another replica) shows the same answer live, and offers no second one.
        send(page_a, "A third question, on A")
        wait_for(lambda: len(visible_text(answer_text(page_a))) > 10 and store.busy(cid), 60, "A streaming")
        page_b.reload()
        seen_on_b = wait_for(lambda: visible_text(answer_text(page_b)), 30, "the live answer on B")
        expect(go(page_b)).to_be_disabled()
        wait_for(lambda: len(visible_text(answer_text(page_b))) > len(seen_on_b), 30, "the answer growing on B")
        msgs = settled(store, 3)
        assert [m.content for m in msgs if m.role == "user"] == [
            "Hello from replica A",
            "And hello from replica B",
            "A third question, on A",
        ]
        assert msgs[-1].status == "complete"
        page_b.reload()
        shows(page_b, msgs[-1])
        expect(go(page_b)).to_be_enabled()
    finally:
        page_a.context.close()
        page_b.context.close()

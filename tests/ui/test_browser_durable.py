"""The page as a viewer of durable generations, in a real headless Chromium: an answer outlives a
reload, shows in a second tab and on a second replica, survives `kill -9` of the app as what was
seen, marked interrupted. Replay provider: the point here is our layer, not the model.

Every app's log is checked for Streamlit calls from threads of our own ("missing ScriptRunContext").
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from playwright.sync_api import expect
from test_browser_chat import answer_text, go, send, shows, visible_text, wait_for

from conftest import BIN, ROOT, free_port, wait_http
from response_streaming.store import Store

pytestmark = pytest.mark.browser
WORDS = " ".join(f"word{i}" for i in range(150))  # 10 s at 15 tokens/s


@pytest.fixture()
def apps(tmp_path):
    """App processes (`streamlit run streaming_app.py`) that a test may SIGKILL; each logs to a file."""
    procs: dict[str, tuple[subprocess.Popen, object]] = {}
    logs = []

    def start(**settings) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
        env.update({"RS_DATA_DIR": str(tmp_path / "data")}, **{f"RS_{k.upper()}": str(v) for k, v in settings.items()})
        log = tmp_path / f"app-{port}.log"
        logs.append(log)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(BIN / "streamlit"), "run", "streaming_app.py", "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        procs[url] = (proc, log)
        wait_http(f"{url}/_stcore/health", proc=proc)
        return url

    def kill(url: str) -> None:
        proc, _ = procs.pop(url)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def check_logs() -> None:
        for log in logs:
            text = log.read_text()
            assert "missing ScriptRunContext" not in text, f"{log.name}:\n{text[-3000:]}"
            assert "Traceback" not in text, f"{log.name}:\n{text[-3000:]}"

    start.kill = kill
    start.check_logs = check_logs
    yield start
    for proc, _ in procs.values():
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def sqlite(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'data' / 'history.sqlite3'}")


def the_conversation(store: Store) -> str:
    return wait_for(lambda: [c["id"] for c in store.list_conversations()], 30, "the conversation")[0]


def last_answer(store: Store, cid: str, status: str | None = None, timeout: float = 60):
    """The conversation's last answer once it has ended (with `status`, if given)."""

    def ended():
        msgs = store.messages(cid)
        m = msgs[-1] if msgs and msgs[-1].role == "assistant" else None
        return m if m and m.status != "streaming" and status in (None, m.status) else None

    return wait_for(ended, timeout, f"the answer to end{f' as {status}' if status else ''}")


def growing(page, more_than: int = 0, timeout: float = 30) -> int:
    """Wait until the live answer on `page` shows more than `more_than` characters; returns how many."""
    return wait_for(lambda: len(visible_text(answer_text(page))) > more_than and len(visible_text(answer_text(page))),
                    timeout, f"the answer to grow past {more_than} characters")  # fmt: skip


def stop(page) -> None:
    page.locator(".st-key-stop").get_by_role("button", name="Stop").click()


def test_a_reload_mid_answer_brings_it_back_still_growing_and_it_ends_complete(apps, page, tmp_path):
    url = apps(provider="replay", replay_rate=15, replay_text=WORDS)
    page.goto(url)
    send(page, "Count for me")
    seen = growing(page, 30)
    page.reload()
    back = growing(page, 0, 10)  # everything so far at once...
    assert back >= seen
    growing(page, back)  # ...then live
    expect(page.locator(".st-key-stop")).to_be_visible()
    expect(go(page)).to_be_disabled()
    store = sqlite(tmp_path)
    answer = last_answer(store, the_conversation(store))
    assert answer.status == "complete" and answer.content == WORDS  # nothing lost or doubled at the seam
    shows(page, answer)
    apps.check_logs()


def test_two_tabs_show_the_same_answer_live_and_either_one_stops_it(apps, browser, page, tmp_path):
    url = apps(provider="replay", replay_rate=15, replay_text=WORDS)
    store = sqlite(tmp_path)
    page.goto(url)
    send(page, "Count for me")
    growing(page, 20)
    cid = the_conversation(store)
    other = browser.new_context().new_page()
    other.goto(f"{url}/?c={cid}")  # a second tab, opened mid-answer
    growing(other, growing(other))  # live there too
    stop(other)  # Stop from the tab that did not start it
    stopped = last_answer(store, cid, "stopped", 30)
    for tab in (page, other):
        shows(tab, stopped)
        expect(tab.get_by_text("Stopped: the answer above is partial.")).to_be_visible()

    # The second tab is idle on the conversation when the first starts another answer: it follows.
    send(page, "And now?")
    wait_for(lambda: other.locator(".stChatMessage").count() == 4, 15, "the new turn in the other tab")
    growing(other, growing(other))
    stop(page)
    again = last_answer(store, cid, "stopped", 30)
    assert again.id != stopped.id
    for tab in (page, other):
        shows(tab, again)
    other.context.close()
    apps.check_logs()


def test_kill_9_mid_answer_keeps_what_was_seen_marked_interrupted_and_the_chat_goes_on(apps, page, tmp_path):
    url = apps(provider="replay", replay_rate=15, replay_text=WORDS)
    page.goto(url)
    send(page, "Count for me")
    growing(page, 60)
    seen = visible_text(answer_text(page))
    apps.kill(url)

    url = apps(provider="replay", replay_rate=200, replay_text="A fresh answer.")
    store = sqlite(tmp_path)
    cid = the_conversation(store)
    page.goto(f"{url}/?c={cid}")
    expect(page.get_by_text("Interrupted:")).to_be_visible(timeout=30_000)
    kept = store.messages(cid)[-1]
    assert kept.status == "interrupted"
    assert visible_text(kept.content).startswith(seen)  # everything the reader had seen was kept
    shows(page, kept)
    expect(page.get_by_role("button", name="Continue")).to_be_enabled()
    expect(page.get_by_role("button", name="Regenerate")).to_be_enabled()

    send(page, "Still there?")  # the conversation is free at once
    fresh = last_answer(store, cid, "complete", 30)
    assert fresh.content == "A fresh answer."
    apps.check_logs()


@pytest.mark.postgres
def test_two_replicas_on_postgresql_show_one_answer_live_and_a_killed_one_ends_interrupted(
    apps, browser, page, postgres
):
    db = postgres()
    a = apps(database_url=db, provider="replay", replay_rate=15, replay_text=WORDS)
    b = apps(database_url=db, provider="replay", replay_rate=15, replay_text=WORDS)
    store = Store(db)
    page.goto(a)
    send(page, "Count for me")
    growing(page, 20)
    cid = the_conversation(store)
    watcher = browser.new_context().new_page()
    watcher.goto(f"{b}/?c={cid}")  # replica B, same database
    growing(watcher, growing(watcher))  # live on B while A generates
    done = last_answer(store, cid, "complete", 60)
    assert done.content == WORDS
    for tab in (page, watcher):
        shows(tab, done)

    # A generates again while B watches; A dies: B's view ends as interrupted within the stale window.
    page.get_by_role("button", name="Regenerate").click()
    wait_for(lambda: store.messages(cid)[-1].status == "streaming", 15, "the new generation")
    expect(watcher.locator(".st-key-stop")).to_be_visible(timeout=15_000)  # B noticed it and attached
    growing(watcher, growing(watcher))
    apps.kill(a)
    killed = time.monotonic()
    kept = last_answer(store, cid, "interrupted", 45)
    expect(watcher.get_by_text("Interrupted:")).to_be_visible(timeout=15_000)
    assert time.monotonic() - killed < 45
    shows(watcher, kept)
    watcher.context.close()
    apps.check_logs()

"""Durable generations on real SQLite and real PostgreSQL: the log, followers, Stop from anywhere, retention,
recovery, and real processes killed with SIGKILL or stopped with SIGTERM."""

from __future__ import annotations

import codecs
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from response_streaming.chat import start_turn
from response_streaming.config import Settings
from response_streaming.errors import GenerationNotFound
from response_streaming.events import Message, Params, TextDelta
from response_streaming.generation import Generations
from response_streaming.generation.log import Log
from response_streaming.generation.recovery import purge
from response_streaming.providers.replay import ReplayProvider
from response_streaming.store import Store, generation_chunks, generations

WORDS = " ".join(f"w{i}" for i in range(400))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres")()
    return f"sqlite:///{tmp_path / 'history.sqlite3'}"


@pytest.fixture()
def gens(url):
    g = Generations(Store(url))
    yield g
    g.close()


def text_of(chunks) -> str:
    return "".join(c.text for c in chunks if c.kind == "text")


def wait_for(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def test_a_generation_logs_contiguous_chunks_and_writes_its_answer_once(gens):
    cid = gens.store.create_conversation("t")
    gid = gens.start(
        ReplayProvider(text=WORDS, rate=400), [Message("user", "go")], Params(max_tokens=1000), conversation_id=cid
    )
    assert len(gid) >= 32 and gens.store.messages(cid)[-1].status == "streaming"
    chunks = list(gens.follow(gid))
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    assert [c.kind for c in chunks[-2:]] == ["usage", "finish"] and chunks[-1].data["status"] == "complete"
    assert text_of(chunks) == WORDS
    # Coalesced: far fewer chunks than the 400 pieces, and the pieces are all counted.
    assert len(chunks) < 200 and sum(c.data.get("n", 0) for c in chunks) == 400
    info = gens.get(gid)
    assert (info.status, info.conversation_id, info.metrics["output_tokens"]) == ("complete", cid, 400)
    [answer] = gens.store.messages(cid)
    assert (answer.content, answer.status, answer.meta["generation_id"]) == (WORDS, "complete", gid)


def test_followers_joining_at_any_offset_see_no_gap_and_no_duplicate(gens):
    gid = gens.start(ReplayProvider(text=WORDS, rate=300), [Message("user", "go")], Params(max_tokens=1000))
    results: list[tuple[int, list]] = []

    def follower(after: int) -> None:
        results.append((after, list(gens.follow(gid, after=after))))

    threads = []
    for _ in range(5):  # join while chunks are being appended, each at the last seq it could see (Last-Event-ID)
        seen = gens.read(gid)
        threads.append(threading.Thread(target=follower, args=(seen[-1].seq if seen else 0,)))
        threads[-1].start()
        time.sleep(0.15)
    for t in threads:
        t.join(60)
    everything = gens.read(gid)
    assert len(results) == 5 and everything[-1].terminal
    for after, chunks in results:
        assert [c.seq for c in chunks] == list(range(after + 1, everything[-1].seq + 1))
        assert text_of(gens.read(gid)[:after]) + text_of(chunks) == WORDS
    assert any(after > 0 for after, _ in results)


def test_many_generations_append_at_once(gens):
    gids = [
        gens.start(ReplayProvider(text=WORDS, rate=0), [Message("user", "go")], Params(max_tokens=1000))
        for _ in range(16)
    ]
    for gid in gids:
        assert gens.wait(gid, 60).status == "complete"
        assert text_of(gens.read(gid)) == WORDS


def test_stop_from_another_replica_keeps_what_the_log_holds(gens, url):
    other = Generations(Store(url))  # a second replica on the same database
    try:
        cid = gens.store.create_conversation("t")
        gid = start_turn(gens, cid, ReplayProvider(text=WORDS, rate=50), Params(max_tokens=1000), "go")
        wait_for(lambda: len(text_of(other.read(gid)).split()) >= 5, what="some text")
        assert other.stop(gid)
        assert gens.wait(gid, 10).status == "stopped"
        answer = gens.store.messages(cid)[-1]
        assert answer.status == "stopped" and answer.content == text_of(gens.read(gid))
        assert 5 <= len(answer.content.split()) < 400 and not gens.store.busy(cid)
        assert not other.stop(gid)  # it has ended: nothing to stop
    finally:
        other.close()


def test_retention_removes_the_log_and_keeps_the_message(url):
    gens = Generations(Store(url), Settings(generation_retention=0))
    try:
        cid = gens.store.create_conversation("t")
        gid = start_turn(gens, cid, ReplayProvider(text="short answer"), Params(), "go")
        gens.wait(gid, 30)
        assert gens.read(gid) and purge(gens) >= 1
        assert gens.read(gid) == [] and gens.get(gid) is None
        with pytest.raises(GenerationNotFound):
            next(gens.follow(gid))
        assert gens.store.messages(cid)[-1].content == "short answer"
    finally:
        gens.close()


def test_a_generation_whose_owner_went_silent_is_interrupted_with_its_partial_answer(url):
    store = Store(url)
    cid = store.create_conversation("t")
    store.add_message(cid, "user", "go")
    mid = store.add_message(cid, "assistant", "", status="streaming", meta={"generation_id": "g-stale"})
    old, now = datetime.now(UTC) - timedelta(seconds=60), datetime.now(UTC)
    row = dict(
        continues=False,
        status="running",
        stop_requested=False,
        started_at=old,
        provider="replay",
        model="replay",
        error="",
        metrics={"ttft_ms": 12},
    )
    with store.write() as conn:
        # One on another machine, silent for a minute; one there, alive (its heartbeat is fresh).
        conn.execute(
            insert(generations).values(
                id="g-stale", conversation_id=cid, message_id=mid, owner="elsewhere:4242:abc", heartbeat_at=old, **row
            )
        )
        conn.execute(
            insert(generations).values(
                id="g-alive", conversation_id=None, message_id=None, owner="elsewhere:4243:def", heartbeat_at=now, **row
            )
        )
        conn.execute(
            insert(generation_chunks),
            [
                {"generation_id": "g-stale", "seq": 1, "kind": "text", "text": "Once upon", "data": {"n": 2}},
                {"generation_id": "g-stale", "seq": 2, "kind": "text", "text": " a time", "data": {"n": 2}},
            ],
        )
    assert store.busy(cid)
    gens = Generations(store)  # a process starting: it recovers at once
    try:
        assert gens.get("g-stale").status == "interrupted" and gens.get("g-alive").status == "running"
        [*_, last] = gens.read("g-stale")
        assert (last.seq, last.kind, last.data["status"]) == (3, "error", "interrupted")
        answer = store.messages(cid)[-1]
        assert (answer.content, answer.status) == ("Once upon a time", "interrupted")
        assert answer.meta["metrics"]["output_tokens"] == 4 and answer.meta["metrics"]["ttft_ms"] == 12
        assert "stopped while this answer was being written" in answer.error
        assert not store.busy(cid)
    finally:
        gens.close()


class SplitUTF8(ReplayProvider):
    """Streams text the way the embedded model's decoder does: bytes in pieces that cut characters in two."""

    def stream(self, messages, params):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        data = self.text.encode()
        for i in range(0, len(data), 3):
            if piece := decoder.decode(data[i : i + 3]):
                yield TextDelta(piece)
        yield from super().stream(messages, Params(max_tokens=0))


def test_multi_byte_characters_split_across_pieces_are_never_split_in_the_log(gens):
    text = "Ça va? 猫と犬 🐱🐶 naïve — ok " * 20
    gid = gens.start(SplitUTF8(text=text, rate=0), [Message("user", "go")], Params())
    chunks = list(gens.follow(gid))
    assert text_of(chunks) == text and chunks[-1].data["status"] == "complete"
    for c in chunks:
        assert c.text.encode("utf-8").decode("utf-8") == c.text and "\ufffd" not in c.text


# Real processes ------------------------------------------------------------------------------------
CHILD = """
import sys, time
from response_streaming.chat import start_turn
from response_streaming.events import Params
from response_streaming.generation import Generations, exit_on_sigterm
from response_streaming.providers.replay import ReplayProvider
from response_streaming.store import Store

exit_on_sigterm()
store = Store(sys.argv[1])
gens = Generations(store)
cid = store.create_conversation("child")
words = " ".join(f"w{i}" for i in range(2000))
gid = start_turn(gens, cid, ReplayProvider(text=words, rate=40), Params(max_tokens=4000), "Tell me a long story")
print(cid, gid, flush=True)
time.sleep(600)
"""


@pytest.fixture()
def child(url):
    """A separate Python process generating on `url` (slow replay); yields (process, conversation id, generation id)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    try:
        cid, gid = proc.stdout.readline().split()
        yield proc, cid, gid
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_kill_9_mid_answer_keeps_every_logged_chunk_and_frees_the_conversation(url, child):
    proc, cid, gid = child
    store = Store(url)
    watcher = Generations(store)  # another replica, watching while the child writes
    try:
        seen = wait_for(lambda: [c for c in watcher.read(gid) if c.kind == "text"][3:], what="chunks from the child")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert store.messages(cid)[-1].status == "streaming"  # nobody has written the answer yet
        # The watcher's view ends on its own: its process sees the owner's pid gone (same host) at its next sweep.
        rest = list(watcher.follow(gid, after=seen[-1].seq))
        assert rest[-1].kind == "error" and rest[-1].data["status"] == "interrupted"
        logged = text_of(watcher.read(gid))
    finally:
        watcher.close()
    gens = Generations(Store(url))  # the app starting again
    try:
        info = gens.get(gid)
        assert info.status == "interrupted" and info.ended_at is not None
        answer = store.messages(cid)[-1]
        assert (answer.status, answer.content) == ("interrupted", logged) and logged.startswith("w0 w1 w2")
        assert answer.meta["metrics"]["output_tokens"] == len(logged.split())
        assert not store.busy(cid)
        again = start_turn(gens, cid, ReplayProvider(text="Fresh answer."), Params(), "And now?")
        assert gens.wait(again, 30).status == "complete"
        assert [m.status for m in store.messages(cid)] == ["complete", "interrupted", "complete", "complete"]
    finally:
        gens.close()


def test_the_next_start_recovers_a_killed_process_at_once(url, child):
    proc, cid, gid = child
    store = Store(url)
    log = Log(store)  # only reads: nothing in this process recovers
    try:
        wait_for(lambda: len(text_of(log.read(gid)).split()) >= 4, what="text from the child")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        logged = text_of(log.read(gid))
        assert log.info(gid).status == "running"
    finally:
        log.close()
    gens = Generations(Store(url))  # its constructor recovers, before any sweep
    try:
        assert gens.get(gid).status == "interrupted" and store.messages(cid)[-1].content == logged
        assert not store.busy(cid)
    finally:
        gens.close()


def test_sigterm_saves_the_partial_answer_before_exit(url, child):
    proc, cid, gid = child
    store = Store(url)
    log = Log(store)  # only reads: no recovery runs in this process, so the child itself saved what we see
    try:
        wait_for(lambda: len(text_of(log.read(gid)).split()) >= 4, what="text from the child")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 143
        assert log.info(gid).status == "interrupted"
        answer = store.messages(cid)[-1]
        assert answer.status == "interrupted" and answer.content == text_of(log.read(gid))
        assert len(answer.content.split()) >= 4 and not store.busy(cid)
    finally:
        log.close()


def test_stop_reaches_a_generation_running_in_another_process(url, child):
    proc, cid, gid = child
    store = Store(url)
    gens = Generations(store)
    try:
        wait_for(lambda: text_of(gens.read(gid)), what="text from the child")
        if store.engine.dialect.name == "postgresql":
            # The child's appends woke this process through LISTEN/NOTIFY (its own appends wake nobody here).
            wait_for(lambda: gens.log.hub.waker.version(gid) > 0, 10, "a notification")
        assert gens.stop(gid, wait=10)
        assert gens.get(gid).status == "stopped" and proc.poll() is None  # the child stopped it and lives on
        answer = store.messages(cid)[-1]
        assert answer.status == "stopped" and answer.content == text_of(gens.read(gid))
    finally:
        gens.close()


@pytest.mark.postgres
def test_a_lost_listen_connection_only_delays_followers(postgres):
    """The log is the truth: with every LISTEN connection killed mid-answer, a follower in another process
    still gets every chunk (by polling) and the listener reconnects."""
    url = postgres()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    store = Store(url)
    gens = Generations(store)
    try:
        cid, gid = proc.stdout.readline().split()
        wait_for(lambda: gens.log.hub.waker.version(gid) > 0, 30, "a notification")  # LISTEN works
        with store.engine.begin() as conn:
            killed = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
            ).scalar()
        assert killed >= 1
        after = gens.read(gid)[-1].seq
        gens.stop(gid, wait=0)  # the child still ends it: the flag in the database reaches it
        rest = list(gens.follow(gid, after=after))
        assert [c.seq for c in rest] == list(range(after + 1, after + 1 + len(rest)))
        assert rest[-1].data["status"] == "stopped"
        assert text_of(gens.read(gid)) == store.messages(cid)[-1].content
    finally:
        gens.close()
        proc.kill()
        proc.wait(10)

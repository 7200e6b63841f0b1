"""`/v1/stream` over real HTTP (uvicorn + httpx) as a durable generation: event ids, a disconnect that
stops nothing, resume with Last-Event-ID or ?after=N while chunks are being appended, Stop from
another connection, a second server on the same database, 404s, and keys that own their generations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai._streaming import SSEDecoder

from conftest import free_port, wait_http
from response_streaming.config import Settings
from response_streaming.errors import Throttled
from response_streaming.events import Params
from response_streaming.generation import Generations
from response_streaming.generation.log import Log
from response_streaming.generation.recovery import purge
from response_streaming.providers.replay import ReplayProvider
from response_streaming.server import create_app
from response_streaming.store import Store

WORDS = " ".join(f"w{i}" for i in range(300))
ASK = {"messages": [{"role": "user", "content": "Count."}], "params": {"max_tokens": 1000}}


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


def server(api_server, gens, provider=None, settings=None) -> str:
    return api_server(create_app(settings or Settings(), provider or ReplayProvider(text=WORDS, rate=150), gens=gens))


def events_of(lines):
    """SSE events from an iterator of text lines, as (id, event, data) with data parsed."""
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.decode(line)
        if event is not None:
            yield int(event.id) if event.id else None, event.event, json.loads(event.data)


def text_of(events) -> str:
    return "".join(d["text"] for _, kind, d in events if kind == "delta")


def test_post_streams_numbered_events_and_names_the_generation(api_server, gens):
    base = server(api_server, gens)
    with httpx.stream("POST", f"{base}/v1/stream", json=ASK, timeout=60) as r:
        gid = r.headers["x-generation-id"]
        events = list(events_of(r.iter_lines()))
    assert len(gid) >= 32 and [e[0] for e in events] == list(range(1, len(events) + 1))
    assert text_of(events) == WORDS
    assert [k for _, k, _ in events[-2:]] == ["usage", "finish"] and events[-1][2]["status"] == "complete"
    assert gens.get(gid).status == "complete"


def test_a_disconnect_stops_nothing_and_last_event_id_resumes_with_no_gap_or_duplicate(api_server, gens):
    base = server(api_server, gens)
    with httpx.stream("POST", f"{base}/v1/stream", json=ASK, timeout=60) as r:
        gid = r.headers["x-generation-id"]
        first = []
        for event in events_of(r.iter_lines()):
            first.append(event)
            if len(first) == 3:
                break  # the client goes away mid-answer
    seen = first[-1][0]
    # Resume at once, while the generation is still appending.
    with httpx.stream("GET", f"{base}/v1/stream/{gid}", headers={"Last-Event-ID": str(seen)}, timeout=60) as r:
        assert r.status_code == 200 and r.headers["x-generation-id"] == gid
        rest = list(events_of(r.iter_lines()))
    assert [e[0] for e in rest] == list(range(seen + 1, seen + 1 + len(rest)))
    assert text_of(first) + text_of(rest) == WORDS and rest[-1][1] == "finish"
    assert gens.get(gid).status == "complete"  # nobody stopped it


def test_an_ended_generation_replays_from_any_offset_then_ends(api_server, gens):
    base = server(api_server, gens, ReplayProvider(text=WORDS))
    with httpx.stream("POST", f"{base}/v1/stream", json=ASK, timeout=60) as r:
        gid, everything = r.headers["x-generation-id"], list(events_of(r.iter_lines()))
    for after in (0, 1, len(everything) - 1, len(everything)):
        with httpx.stream("GET", f"{base}/v1/stream/{gid}?after={after}", timeout=30) as r:
            assert list(events_of(r.iter_lines())) == everything[after:]


def test_unknown_ids_and_bad_offsets_are_refused_in_our_error_shape(api_server, gens):
    base = server(api_server, gens)
    r = httpx.get(f"{base}/v1/stream/no-such-generation", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["type"] == "GenerationNotFound"
    r = httpx.post(
        f"{base}/v1/stream/no-such-generation/stop", headers={"content-type": "application/json"}, timeout=10
    )
    assert r.status_code == 404
    gid = gens.start(ReplayProvider(text="x"), [], Params())
    r = httpx.get(f"{base}/v1/stream/{gid}?after=-1", timeout=10)
    assert r.status_code == 400 and "sequence number" in r.json()["error"]["message"]


def test_an_error_before_any_text_keeps_its_http_status(api_server, gens):
    provider = ReplayProvider(text=WORDS, fail_after=0, error=Throttled("The model is busy; try again in a moment."))
    r = httpx.post(f"{server(api_server, gens, provider)}/v1/stream", json=ASK, timeout=30)
    assert r.status_code == 429 and r.json()["error"] == {
        "message": "The model is busy; try again in a moment.",
        "type": "Throttled",
    }


def test_stop_from_another_connection_ends_the_stream_with_what_was_written(api_server, gens):
    base = server(api_server, gens, ReplayProvider(text=WORDS, rate=40))
    with httpx.stream("POST", f"{base}/v1/stream", json=ASK, timeout=60) as r:
        gid, events = r.headers["x-generation-id"], []
        for event in events_of(r.iter_lines()):
            events.append(event)
            if len(events) == 3:
                stop = httpx.post(
                    f"{base}/v1/stream/{gid}/stop", headers={"content-type": "application/json"}, timeout=30
                )
                assert stop.status_code == 200 and stop.json() == {"id": gid, "stopped": True, "status": "stopped"}
    assert events[-1][1] == "finish" and events[-1][2]["status"] == "stopped"
    assert 3 <= len(text_of(events).split()) < 300
    assert text_of(events) == "".join(c.text for c in gens.read(gid) if c.kind == "text")


def test_a_second_server_on_the_same_database_attaches_live(api_server, gens, url):
    other = Generations(Store(url))  # another replica: its own process state, the same database
    try:
        a = server(api_server, gens)
        b = server(api_server, other)
        with httpx.stream("POST", f"{a}/v1/stream", json=ASK, timeout=60) as r:
            gid = r.headers["x-generation-id"]
            n, _, _ = next(events_of(r.iter_lines()))
            with httpx.stream("GET", f"{b}/v1/stream/{gid}?after={n}", timeout=60) as r2:
                on_b = list(events_of(r2.iter_lines()))
            assert gens.get(gid).status == "complete"
        assert [e[0] for e in on_b] == list(range(n + 1, n + 1 + len(on_b)))
        assert text_of(gens_events(gens, gid, n)) == text_of(on_b) and on_b[-1][1] == "finish"
    finally:
        other.close()


def gens_events(gens, gid, after):
    return [(c.seq, "delta", {"text": c.text}) for c in gens.read(gid, after) if c.kind == "text"]


def test_with_api_keys_only_the_key_that_started_a_generation_sees_it(api_server, gens):
    settings = Settings(api_keys="key-a,key-b")
    base = server(api_server, gens, ReplayProvider(text="a short answer"), settings)
    a, b = {"authorization": "Bearer key-a"}, {"authorization": "Bearer key-b"}
    r = httpx.post(f"{base}/v1/stream", json=ASK, headers=a, timeout=30)
    gid = r.headers["x-generation-id"]
    assert httpx.get(f"{base}/v1/stream/{gid}", headers=b, timeout=10).status_code == 404
    stop = httpx.post(f"{base}/v1/stream/{gid}/stop", headers={**b, "content-type": "application/json"}, timeout=10)
    assert stop.status_code == 404
    mine = httpx.get(f"{base}/v1/stream/{gid}", headers=a, timeout=10)
    assert mine.status_code == 200 and ["a", "short", "answer"][0] in mine.text


def test_sigterm_to_serve_saves_the_answer_and_ends_its_stream_at_once(tmp_path):
    port, exe = free_port(), str(Path(sys.executable).parent / "response-streaming")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    env |= {"RS_DATA_DIR": str(tmp_path), "RS_REPLAY_RATE": "20", "RS_REPLAY_TEXT": WORDS}
    proc = subprocess.Popen(
        [exe, "serve", "--provider", "replay", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/stream", json=ASK, timeout=30) as r:
            gid, events = r.headers["x-generation-id"], []
            for event in events_of(r.iter_lines()):
                events.append(event)
                if len(events) == 3:
                    proc.send_signal(signal.SIGTERM)  # a redeploy, or Ctrl-C
        # The stream ended with the saved answer's last event, not a cut connection.
        assert events[-1][1] == "error" and events[-1][2]["generation_status"] == "interrupted"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = Log(Store(f"sqlite:///{tmp_path / 'history.sqlite3'}"))
    try:
        assert log.info(gid).status == "interrupted"
        assert "".join(c.text for c in log.read(gid) if c.kind == "text") == text_of(events)
    finally:
        log.close()


def test_an_expired_generation_is_a_404(api_server, url):
    gens = Generations(Store(url), Settings(generation_retention=0))
    try:
        base = server(api_server, gens, ReplayProvider(text="short"))
        gid = httpx.post(f"{base}/v1/stream", json=ASK, timeout=30).headers["x-generation-id"]
        assert httpx.get(f"{base}/v1/stream/{gid}", timeout=10).status_code == 200  # ended: it replays
        gens.wait(gid, 10)
        purge(gens)  # what the sweeper does once the retention time has passed
        r = httpx.get(f"{base}/v1/stream/{gid}", timeout=10)
        assert r.status_code == 404 and r.json()["error"]["type"] == "GenerationNotFound"
    finally:
        gens.close()

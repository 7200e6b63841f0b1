"""The CLI and durable generations, through the real entry point: `ask` names its generation and
Ctrl-C stops it; `attach` prints an answer from the start (or after N) and follows it; Ctrl-C there
only detaches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from response_streaming.events import Message, Params
from response_streaming.generation import Generations
from response_streaming.providers.replay import ReplayProvider
from response_streaming.store import Store

EXE = str(Path(sys.executable).parent / "response-streaming")
WORDS = " ".join(f"w{i}" for i in range(300))


def env(**extra) -> dict:
    # conftest points RS_DATA_DIR at this test's directory: the CLI and the test share that history database.
    return {k: v for k, v in os.environ.items() if not k.startswith("RS_") or k == "RS_DATA_DIR"} | extra


@pytest.fixture()
def gens():
    g = Generations(Store(f"sqlite:///{Path(os.environ['RS_DATA_DIR']) / 'history.sqlite3'}"))
    yield g
    g.close()


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_ask_names_its_generation_and_attach_prints_it_again(gens):
    out = subprocess.run(
        [EXE, "ask", "Count.", "--provider", "replay", "--max-tokens", "1000", "--stats"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(RS_REPLAY_TEXT=WORDS),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == WORDS + "\n"
    gid = out.stderr.split("generation ", 1)[1].split(":", 1)[0]
    assert "[complete]" in out.stderr and gens.get(gid).status == "complete"
    again = subprocess.run([EXE, "attach", gid], capture_output=True, text=True, timeout=60, env=env())
    assert again.returncode == 0 and again.stdout == WORDS + "\n"
    first = gens.read(gid)[0]
    later = subprocess.run([EXE, "attach", gid, "--after", "1"], capture_output=True, text=True, timeout=60, env=env())
    assert later.returncode == 0 and first.text + later.stdout == WORDS + "\n"


def test_attach_follows_a_running_answer_and_ctrl_c_only_detaches(gens):
    gid = gens.start(ReplayProvider(text=WORDS, rate=30), [Message("user", "go")], Params(max_tokens=1000))
    proc = subprocess.Popen([EXE, "attach", gid], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        assert proc.stdout.read(10)  # the text so far, then live
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130 and "detached" in proc.stderr.read()
        assert gens.get(gid).status == "running"  # detaching stopped nothing
        follow = subprocess.run([EXE, "attach", gid], capture_output=True, text=True, timeout=60, env=env())
        assert follow.returncode == 0 and follow.stdout == WORDS + "\n"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_in_ask_stops_its_generation_and_keeps_the_partial_answer(gens):
    proc = subprocess.Popen(
        [EXE, "ask", "Count.", "--provider", "replay", "--max-tokens", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(RS_REPLAY_TEXT=WORDS, RS_REPLAY_RATE="30"),
    )
    try:
        printed = proc.stdout.read(12)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        printed += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    with gens.store.engine.connect() as conn:
        from sqlalchemy import text

        [gid] = conn.execute(text("select id from generations")).scalars().all()
    assert gens.get(gid).status == "stopped"
    logged = "".join(c.text for c in gens.read(gid) if c.kind == "text")
    assert WORDS.startswith(logged) and logged.startswith(printed.strip()) and len(logged) < len(WORDS)


def test_attach_to_an_unknown_id_is_a_one_line_error():
    out = subprocess.run([EXE, "attach", "nope"], capture_output=True, text=True, timeout=60, env=env())
    assert out.returncode == 1 and out.stderr.startswith("error: No such generation")
    assert len(out.stderr.strip().splitlines()) == 1

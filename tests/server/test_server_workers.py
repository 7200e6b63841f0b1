"""`serve --workers N` (issue 13): several processes answer on one port, and a durable generation started
by one process can be re-attached through any other, because its log is in the shared database.

Which worker accepts a connection is the kernel's choice, so the re-attach case uses two `serve`
processes on two ports over one database: the same situation as two workers, made deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import BIN, free_port, wait_http

TEXT = "Any worker can read what another one wrote, because the log is in the database."


def start_serve(tmp_path: Path, workers: int, name: str, rate: float = 0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    env.update(RS_PROVIDER="replay", RS_REPLAY_TEXT=TEXT, RS_REPLAY_RATE=str(rate), RS_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115  (closed with the process, below)
    proc = subprocess.Popen(
        [str(BIN / "response-streaming"), "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.log = log  # type: ignore[attr-defined]
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    finally:
        proc.log.close()  # type: ignore[attr-defined]


def deltas(raw: str) -> str:
    text = ""
    for block in raw.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") == "delta":
            text += json.loads(lines["data"])["text"]
    return text


def test_two_workers_serve_many_streams_exactly(tmp_path):
    proc, base = start_serve(tmp_path, 2, "two-workers")
    try:

        def one(_):
            with httpx.Client(timeout=60) as c:  # a connection each: the workers share them out
                r = c.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
                return r.json()["choices"][0]["message"]["content"]

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(16))) == [TEXT] * 16
    finally:
        stop(proc)
    out = (tmp_path / "two-workers.log").read_text()
    assert "(granian, 2 workers)" in out and "Traceback" not in out
    assert out.count("outcome=complete") == 16


def test_a_generation_is_reattached_through_another_process(tmp_path):
    first, base1 = start_serve(tmp_path, 1, "first", rate=20)
    second, base2 = start_serve(tmp_path, 1, "second", rate=20)
    try:
        body = {"messages": [{"role": "user", "content": "x"}]}
        with httpx.Client(timeout=60) as c, c.stream("POST", f"{base1}/v1/stream", json=body) as r:
            gid = r.headers["x-generation-id"]
            next(r.iter_lines())  # it started, on the first process; then this client leaves
        with httpx.Client(timeout=60) as c:
            raw = c.get(f"{base2}/v1/stream/{gid}", params={"after": 0}).text  # replays, then follows it live
        assert deltas(raw) == TEXT and "event: finish" in raw
    finally:
        stop(first)
        stop(second)

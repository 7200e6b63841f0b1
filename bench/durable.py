"""Benchmark: what the durable generation log costs.

1. Latency, side by side: the same replayed answer read straight from a `Recorder` (the direct path
   front ends used before the log) and through a durable generation (job → coalesced appends → log →
   `follow`), runs alternating. TTFT: from asking to the reader's first text; overhead: the same
   minus the provider's first emit. Drain lag: from the provider's last token to the reader having
   it. Medians, on SQLite and on PostgreSQL.
2. Load: N concurrent replay generations appending to SQLite, then to PostgreSQL: appends/s
   sustained, p50/p99 latency of one append (transaction included), "database is locked" errors,
   and whether every text came out exact. With the default coalescing (50 ms) and without (0: one
   append per token, the worst case).

Run on a quiet machine: `python bench/durable.py` (about 3 minutes on 2 cores). PostgreSQL comes
from a throwaway cluster (Debian's `postgresql` package), or `--postgres URL`; `--no-postgres` skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import RESULTS, fmt, free_port, median, table, write_result
from response_streaming.config import Settings
from response_streaming.events import Message, Params, TextDelta
from response_streaming.generation import Generations
from response_streaming.providers.replay import ReplayProvider
from response_streaming.recorder import Recorder
from response_streaming.store import Store

PROMPT = [Message("user", "bench")]


class Tapped(ReplayProvider):
    """The replay provider, noting (perf_counter) when its first and last tokens left it."""

    def stream(self, messages, params):
        self.first = self.last = None
        for event in super().stream(messages, params):
            if isinstance(event, TextDelta):
                self.last = time.perf_counter()
                self.first = self.first or self.last
            yield event


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


# ------------------------------------------------------------------ 1. latency, direct vs log


def direct_run(text: str, rate: float) -> dict:
    provider = Tapped(text=text, rate=rate)
    start, got, first, done = time.perf_counter(), 0, None, None
    for piece in Recorder(provider.stream(PROMPT, Params(max_tokens=100_000))):
        first = first or time.perf_counter()
        got += len(piece)
        if got == len(text):
            done = time.perf_counter()
    return measure(provider, start, first, done)


def log_run(gens: Generations, text: str, rate: float) -> dict:
    provider = Tapped(text=text, rate=rate)
    start = time.perf_counter()
    gid = gens.start(provider, PROMPT, Params(max_tokens=100_000))
    got, first, done = 0, None, None
    for chunk in gens.follow(gid):
        if chunk.kind == "text":
            first = first or time.perf_counter()
            got += len(chunk.text)
            if got == len(text):
                done = time.perf_counter()
    return measure(provider, start, first, done)


def measure(provider: Tapped, start: float, first, done) -> dict:
    return {
        "ttft_ms": (first - start) * 1000,
        "ttft_overhead_ms": (first - provider.first) * 1000,
        "drain_lag_ms": (done - provider.last) * 1000 if done else None,
    }


def latency(dbs: dict[str, str], runs: int, tokens: int, rate: float) -> tuple[list, dict]:
    text, rows, raw = words(tokens), [], {}
    for name, url in dbs.items():
        gens = Generations(Store(url))
        try:
            direct, logged = [], []
            for _ in range(runs):  # alternating, so drift in the machine's load hits both alike
                direct.append(direct_run(text, rate))
                logged.append(log_run(gens, text, rate))
        finally:
            gens.close()
        raw[name] = {"direct": direct, "log": logged}
        for label, results in (("direct (Recorder)", direct), (f"log ({name})", logged)):
            rows.append(
                [name, label, str(runs)]
                + [fmt(median([r[k] for r in results]), 1) for k in ("ttft_ms", "ttft_overhead_ms", "drain_lag_ms")]
            )
    return rows, raw


# ------------------------------------------------------------------ 2. many generations appending


def load(url: str, name: str, count: int, tokens: int, rate: float, coalesce_ms: int) -> tuple[list, dict]:
    gens = Generations(Store(url), Settings(generation_coalesce_ms=coalesce_ms))
    times: list[float] = []
    errors = {"locked": 0, "other": 0}
    lock = threading.Lock()
    append = gens.log.append

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return append(*args, **kwargs)
        except Exception as err:
            with lock:
                errors["locked" if "database is locked" in str(err) else "other"] += 1
            raise
        finally:
            with lock:
                times.append(time.perf_counter() - t0)

    gens.log.append = timed  # type: ignore[method-assign]
    text = words(tokens)
    try:
        t0 = time.perf_counter()
        gids = [
            gens.start(ReplayProvider(text=text, rate=rate), PROMPT, Params(max_tokens=100_000)) for _ in range(count)
        ]
        infos = [gens.wait(gid, 600) for gid in gids]
        wall = time.perf_counter() - t0
        exact = sum(1 for gid in gids if "".join(c.text for c in gens.read(gid) if c.kind == "text") == text)
        complete = sum(1 for i in infos if i is not None and i.status == "complete")
    finally:
        gens.close()
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else None
    raw = {
        "appends": len(ms),
        "wall_s": wall,
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": p99,
        "max_ms": ms[-1] if ms else None,
        "errors": errors,
        "complete": complete,
        "exact": exact,
    }
    row = [
        name,
        str(count),
        f"{coalesce_ms} ms",
        fmt(len(ms) / wall),
        fmt(raw["p50_ms"], 1),
        fmt(p99, 1),
        str(errors["locked"]),
        str(errors["other"]),
        f"{complete}/{count}",
        f"{exact}/{count}",
    ]
    return [row], raw


# ------------------------------------------------------------------ a throwaway PostgreSQL


@contextlib.contextmanager
def temp_postgres() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary directory on a free loopback port (as tests/conftest.py does)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL is missing: run `bash scripts/system-deps.sh`, or pass --no-postgres.")
    bindir, root, port = Path(found[-1]).parent, Path(tempfile.mkdtemp(prefix="rs-bench-pg-")), free_port()
    owner = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the `postgres` user
        shutil.chown(root, "postgres", "postgres")
        owner = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        subprocess.run(owner + list(cmd), check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(root / "data"), "-U", "rs", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(root / "data"),
        "-l",
        str(root / "log"),
        "-w",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
        "start",
    )
    try:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "rs", name)
        yield f"postgresql+psycopg://rs@127.0.0.1:{port}/{name}"
    finally:
        subprocess.run(
            owner + [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per path for the latency table")
    ap.add_argument("--tokens", type=int, default=200, help="tokens per answer in the latency table")
    ap.add_argument("--rate", type=float, default=100, help="tokens/s of the replayed answer (latency table)")
    ap.add_argument("--generations", type=int, default=64, help="concurrent generations in the load table")
    ap.add_argument("--load-tokens", type=int, default=300)
    ap.add_argument("--load-rate", type=float, default=50, help="tokens/s of each generation in the load table")
    ap.add_argument("--coalesce", default="50,0", help="coalescing windows (ms) tried in the load table")
    ap.add_argument("--postgres", help="a PostgreSQL URL (default: a throwaway cluster)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "durable.md")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="rs-bench-durable-"))
    with contextlib.ExitStack() as stack:
        dbs = {"SQLite": f"sqlite:///{work / 'history.sqlite3'}"}
        if not args.no_postgres:
            dbs["PostgreSQL"] = args.postgres or stack.enter_context(temp_postgres())
        lat_rows, lat_raw = latency(dbs, args.runs, args.tokens, args.rate)
        load_rows, load_raw = [], {}
        for ms in (int(x) for x in args.coalesce.split(",")):
            for name, url in dbs.items():
                fresh = url if name != "SQLite" else f"sqlite:///{work / f'load-{ms}.sqlite3'}"
                rows, load_raw[f"{name}-{ms}"] = load(
                    fresh, name, args.generations, args.load_tokens, args.load_rate, ms
                )
                load_rows += rows
    shutil.rmtree(work, ignore_errors=True)
    body = (
        f"### Latency: {args.tokens} tokens at {args.rate:g} tokens/s, in one process (medians)\n\n"
        + table(["database", "path", "runs", "TTFT ms", "TTFT overhead ms", "drain lag ms"], lat_rows)
        + f"\n\n### Load: {args.generations} generations at once, {args.load_tokens} tokens at "
        f"{args.load_rate:g} tokens/s each\n\n"
        + table(
            [
                "database",
                "generations",
                "coalescing",
                "appends/s",
                "append p50 ms",
                "append p99 ms",
                "'database is locked'",
                "other errors",
                "complete",
                "exact text",
            ],
            load_rows,
        )
    )
    command = "python bench/durable.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = write_result(
        "durable", "Durable generations: the log's overhead and appends under load", command.strip(), body, args.out
    )
    out.with_suffix(".json").write_text(json.dumps({"latency": lat_raw, "load": load_raw}, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()

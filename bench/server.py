"""Benchmark 3: `response-streaming serve` under many streaming clients (OpenAI chat completions, SSE).

    .venv/bin/python bench/server.py

- Replay: N concurrent streams (64 by default) against `serve --provider replay`, each offered at
  500 tokens/s: is every stream complete ([DONE], a finish reason) and byte-exact (its text is the
  replayed text), delivered ÷ offered tokens/s per stream, the gaps between chunk arrivals (p50,
  p99, max), time to first chunk, server CPU, and the server's resident memory (peak during each
  round, and after each round: bounded means it does not grow round after round).
- Embedded model: `serve` on the real local model with its wait queue (RS_QUEUE_SIZE, 8), sent
  queue + 5 requests 25 ms apart (all sent before the first answer ends): are the accepted ones
  answered in arrival order, each complete, and are the rest refused at once with a clean 429 in
  OpenAI's error shape?

The client is raw asyncio (HTTP/1.0, so the body is not chunk-encoded, and SSE split by hand): at
32,000 events/s on a 2-core machine, a heavier client would measure itself. It shares the cores
with the server, so its own CPU time is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BIN,
    RESULTS,
    bench_text,
    cpu_seconds,
    fmt,
    free_port,
    median,
    rss_mb,
    start_process,
    stop_process,
    table,
    write_result,
)
from response_streaming.providers.replay import split_tokens


def start_serve(env: dict, work: Path, provider: str, server: str = "granian", workers: int = 1):
    port = free_port()
    args = [
        str(BIN / "response-streaming"),
        "serve",
        "--provider",
        provider,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--server",
        server,
        "--workers",
        str(workers),
    ]
    proc = start_process(
        args,
        {"RS_DATA_DIR": str(work), **env},
        f"http://127.0.0.1:{port}/health",
        work / f"serve-{provider}-{server}-{workers}.log",
    )
    return proc, port


def tree(pid: int) -> list[int]:
    """`pid` and every process below it (the server's workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
        i += 1
    return pids


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def tree_rss(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            total += rss_mb(p)
        except (OSError, RuntimeError):
            pass
    return total


async def stream_chat(port: int, max_tokens: int, timeout: float) -> dict:
    """One streamed chat completion; every content chunk's arrival time, the text, how it ended."""
    body = json.dumps(
        {
            "model": "bench",
            "stream": True,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Tell me the story."}],
        }
    ).encode()
    out = {"status": None, "text": "", "times": [], "done": False, "finish": None, "error": None}
    start = time.perf_counter()
    out["start"] = start
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        out["status"] = int(head.split(b" ", 2)[1])
        out["head_at"] = time.perf_counter() - start
        if out["status"] != 200:  # an error: one JSON body in OpenAI's shape
            out["error"] = json.loads(await asyncio.wait_for(reader.read(), timeout)).get("error")
            return out
        buf, pieces = b"", []
        deadline = start + timeout
        while True:
            data = await asyncio.wait_for(reader.read(65536), max(0.1, deadline - time.perf_counter()))
            if not data:
                break
            now = time.perf_counter()
            buf += data
            *events, buf = buf.split(b"\n\n")
            for event in events:
                payload = event.removeprefix(b"data: ")
                if payload == b"[DONE]":
                    out["done"] = True
                    continue
                obj = json.loads(payload)
                if "error" in obj:
                    out["error"] = obj["error"]
                    continue
                choice = obj["choices"][0]
                if choice["delta"].get("content"):
                    pieces.append(choice["delta"]["content"])
                    out["times"].append(now)
                out["finish"] = choice["finish_reason"] or out["finish"]
        out["text"] = "".join(pieces)
    except (TimeoutError, ConnectionError, json.JSONDecodeError) as err:
        out["error"] = out["error"] or f"{type(err).__name__}"
    finally:
        writer.close()
        out["end"] = time.perf_counter()
    return out


async def sample_memory(pid: int, peak: list, stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], tree_rss(pid))
        await asyncio.sleep(0.1)


async def replay_round(port: int, pid: int, clients: int, tokens: int, rate: float) -> tuple[list[dict], float]:
    peak, stop = [tree_rss(pid)], asyncio.Event()
    sampler = asyncio.create_task(sample_memory(pid, peak, stop))
    timeout = tokens / rate * 3 + 30  # far beyond the nominal time: a stream that needs it has failed anyway
    results = await asyncio.gather(*(stream_chat(port, tokens, timeout) for _ in range(clients)))
    stop.set()
    await sampler
    return results, peak[0]


def percentile(values: list[float], p: float):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1)]


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def replay_bench(
    configs: list[tuple[str, int]], clients_list: list[int], tokens: int, rate: float, rounds: int, work: Path
) -> tuple[list, list, dict]:
    """Every server configuration (server, workers) in turn, each with every client count."""
    text = "".join(split_tokens(bench_text())[:tokens])
    rows, mem_rows, raw = [], [], {}
    for server, workers in configs:
        name = f"{server} ×{workers}" if workers > 1 else server
        proc, port = start_serve({"RS_REPLAY_TEXT": text, "RS_REPLAY_RATE": str(rate)}, work, "replay", server, workers)
        try:
            time.sleep(1.0)  # every worker up (the health check reached one)
            mem_rows.append([name, "server started", "–", fmt(tree_rss(proc.pid), 0)])
            for clients in clients_list:
                for r in range(rounds):
                    cpu0, ccpu0, t0 = tree_cpu(proc.pid), client_cpu(), time.perf_counter()
                    results, peak = asyncio.run(replay_round(port, proc.pid, clients, tokens, rate))
                    wall = time.perf_counter() - t0
                    cpu, ccpu = tree_cpu(proc.pid) - cpu0, client_cpu() - ccpu0
                    time.sleep(0.5)  # let the server drop the finished requests before reading its memory
                    after = tree_rss(proc.pid)
                    mem_rows.append([name, f"{clients} clients, round {r + 1}", fmt(peak, 0), fmt(after, 0)])
                    complete = [s for s in results if s["status"] == 200 and s["done"] and s["finish"]]
                    exact = [s for s in complete if s["text"] == text]
                    ratios = [
                        (len(s["times"]) - 1) / (s["times"][-1] - s["times"][0]) / rate
                        for s in results
                        if len(s["times"]) > 1
                    ]
                    gaps = [(b - a) * 1000 for s in results for a, b in itertools.pairwise(s["times"])]
                    ttft = [(s["times"][0] - s["start"]) * 1000 for s in results if s["times"]]
                    chunks = sum(len(s["times"]) for s in results)
                    key = f"{name}-{clients}-{r}"
                    raw[key] = {
                        "wall": wall,
                        "cpu": cpu,
                        "client_cpu": ccpu,
                        "peak": peak,
                        "after": after,
                        "errors": [s["error"] for s in results if s["error"]][:5],
                    }
                    rows.append(
                        [
                            name,
                            fmt(clients),
                            str(r + 1),
                            f"{len(complete)}/{clients}",
                            f"{len(exact)}/{clients}",
                            fmt(median(ratios), 3),
                            fmt(min(ratios) if ratios else None, 3),
                            fmt(median(gaps), 1),
                            fmt(percentile(gaps, 99), 1),
                            fmt(max(gaps) if gaps else None, 0),
                            fmt(median(ttft), 0),
                            fmt(percentile(ttft, 99), 0),
                            fmt(chunks / wall, 0),
                            fmt(cpu, 1),
                            fmt(cpu / chunks * 1000 * 1000 if chunks else None, 0),
                            fmt(peak, 0),
                            fmt(ccpu, 1),
                        ]
                    )
                    print(
                        json.dumps({"server": name, "clients": clients, "round": r + 1, **raw[key]}),
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            stop_process(proc)
    return rows, mem_rows, raw


async def local_burst(port: int, n: int, spacing: float, max_tokens: int) -> list[dict]:
    async def one(i: int) -> dict:
        await asyncio.sleep(i * spacing)  # a known arrival order
        result = await stream_chat(port, max_tokens, timeout=300)
        return result

    return await asyncio.gather(*(one(i) for i in range(n)))


SPACING = 0.025  # seconds between the embedded model's requests: ordered, and all in before the first ends


def local_bench(extra: int, max_tokens: int, queue_size: int, parallel: int, work: Path) -> tuple[list, str]:
    env = {"RS_QUEUE_SIZE": str(queue_size), "RS_LOCAL_PARALLEL": str(parallel), "RS_TEMPERATURE": "0"}
    proc, port = start_serve(env, work, "local")
    try:
        # Every slot busy, every queue place taken, and `extra` more that must be refused.
        results = asyncio.run(local_burst(port, parallel + queue_size + extra, SPACING, max_tokens))
    finally:
        stop_process(proc)
    t0 = min(s["start"] for s in results)
    rows = []
    for s in sorted(results, key=lambda s: s["start"]):
        first = (s["times"][0] - t0) if s["times"] else None
        answered = s["status"] == 200
        rows.append(
            [
                str(len(rows) + 1),
                str(s["status"]),
                fmt((s["start"] - t0) * 1000, 0),
                fmt((s["start"] - t0 + s["head_at"]) * 1000 if "head_at" in s else None, 0),
                fmt(first * 1000 if first else None, 0),
                fmt((s["end"] - t0) * 1000, 0),
                str(len(s["times"])) if answered else "–",
                ("yes" if s["done"] and s["finish"] else "NO") if answered else "–",
                (s["error"] or {}).get("type", "–") if isinstance(s["error"], dict) else str(s["error"] or "–"),
            ]
        )
    served = [s for s in results if s["status"] == 200 and s["times"]]
    # Arrival order is the order the requests were really sent in (their start times).
    arrival = {id(s): i for i, s in enumerate(sorted(results, key=lambda s: s["start"]))}
    order = [arrival[id(s)] for s in sorted(served, key=lambda s: s["times"][0])]
    refused = [s for s in results if s["status"] == 429]
    summary = (
        f"{len(results)} requests {SPACING * 1000:g} ms apart, {parallel} slots, queue bound {queue_size}: "
        f"{len(served)} answered "
        f"({sum(1 for s in served if s['done'] and s['finish'])} complete), {len(refused)} refused with 429; "
        f"answered in arrival order: {'yes' if order == sorted(order) else 'no ' + str([i + 1 for i in order])}; "
        f"every 429 in OpenAI's error shape: "
        f"{'yes' if all(isinstance(s['error'], dict) and s['error'].get('message') for s in refused) else 'no'}."
    )
    return rows, summary


def local_share(clients: int, max_tokens: int, work: Path) -> list[list[str]]:
    """How to share the embedded model: one process whose engine batches every request (what `serve`
    does), against one model per worker (approximated by two `serve` processes, half the clients each).
    Aggregate tokens/s while all `clients` stream at once, and the memory of all processes."""
    rows = []
    for processes in (1, 2):
        env = {"RS_TEMPERATURE": "0", "RS_LOCAL_PARALLEL": str(max(1, clients // processes))}
        servers = [start_serve(env, work, "local", "granian", 1) for _ in range(processes)]
        try:
            ports = [port for _, port in servers]

            async def burst(ports=ports, processes=processes):
                return await asyncio.gather(
                    *(stream_chat(ports[i % processes], max_tokens, 600) for i in range(clients))
                )

            asyncio.run(burst())  # warm-up: first prompt evaluation, caches
            t0 = time.perf_counter()
            results = asyncio.run(burst())
            wall = time.perf_counter() - t0
            memory = sum(tree_rss(proc.pid) for proc, _ in servers)
        finally:
            for proc, _ in servers:
                stop_process(proc)
        chunks = sum(len(r["times"]) for r in results)
        complete = sum(1 for r in results if r["status"] == 200 and r["done"])
        rows.append(
            [
                f"{processes} process{'es' if processes > 1 else ''} × {clients // processes} slots",
                f"{complete}/{clients}",
                fmt(chunks / wall, 1),
                fmt(wall, 1),
                fmt(memory, 0),
            ]
        )
    return rows


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="64,256", help="concurrent streams, comma-separated (rows each)")
    ap.add_argument(
        "--servers",
        default="uvicorn:1,hypercorn:1,granian:1,granian:2",
        help="server:workers configurations, side by side in one run",
    )
    ap.add_argument("--tokens", type=int, default=2000, help="tokens per stream")
    ap.add_argument("--rate", type=float, default=500.0, help="tokens/s offered to each stream")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--local-extra", type=int, default=4, help="requests beyond queue + 1 sent to the embedded model")
    ap.add_argument("--local-tokens", type=int, default=16)
    ap.add_argument("--queue-size", type=int, default=8)
    ap.add_argument("--local-parallel", type=int, default=4, help="the embedded model's slots (RS_LOCAL_PARALLEL)")
    ap.add_argument("--skip-local", action="store_true", help="only the replay rounds")
    ap.add_argument("--share-clients", type=int, default=4, help="concurrent answers in the model-sharing rows")
    ap.add_argument("--share-tokens", type=int, default=48, help="tokens per answer in the model-sharing rows")
    ap.add_argument("--out", type=Path, default=RESULTS / "server.md")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.servers.split(",")]
        rows, mem_rows, raw = replay_bench(
            configs, [int(x) for x in args.clients.split(",")], args.tokens, args.rate, args.rounds, work
        )
        local_rows, summary = (
            ([], "skipped (--skip-local).")
            if args.skip_local
            else local_bench(args.local_extra, args.local_tokens, args.queue_size, args.local_parallel, work)
        )
        share_rows = [] if args.skip_local else local_share(args.share_clients, args.share_tokens, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    body = "\n\n".join(
        [
            f"Replay provider, {args.tokens:,} tokens per stream offered at {args.rate:g} tokens/s each "
            "(gaps: between arrivals of chunks within a stream; nominal gap {:.0f} ms):".format(1000 / args.rate),
            table(
                [
                    "server",
                    "clients",
                    "round",
                    "complete",
                    "byte-exact",
                    "delivered ÷ offered (median)",
                    "(worst stream)",
                    "gap p50 ms",
                    "gap p99 ms",
                    "gap max ms",
                    "first chunk p50 ms",
                    "first chunk p99 ms",
                    "chunks/s, all streams",
                    "server CPU s",
                    "server CPU ms / 1,000 chunks",
                    "server memory peak MB",
                    "client CPU s",
                ],
                rows,
            ),
            "Server resident memory, all its processes (MB):",
            table(["server", "", "peak during", "after"], mem_rows),
            f"Embedded model ({args.local_tokens} tokens per answer, temperature 0): {summary}",
            table(
                [
                    "request",
                    "status",
                    "sent at ms",
                    "status line at ms",
                    "first chunk at ms",
                    "ended at ms",
                    "chunks",
                    "complete",
                    "error type",
                ],
                local_rows,
            ),
            f"Sharing the embedded model: {args.share_clients} answers of {args.share_tokens} tokens at once, "
            f"after one "
            "warm-up burst; one process batching all of them (what `serve` does) vs one model per worker:",
            table(
                ["", "complete", "pieces/s, all answers (≈ tokens/s)", "wall s", "memory MB, all processes"], share_rows
            ),
        ]
    )
    command = "python bench/server.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return write_result("server", "Server: many streaming clients", command.strip(), body, args.out)


if __name__ == "__main__":
    main()

"""Benchmark 2: the embedded engine, side by side with a bare batched llama.cpp loop and llama-cpp-python's server.

    .venv/bin/python bench/engine.py

- Throughput: B = 1, 2, 4, 8 concurrent answers, each asked for `--tokens` tokens, for three engines
  on the same GGUF, threads and sampling:
  * ours: `LocalProvider.stream` from B threads (prompt building, the engine thread, per-sequence
    sampling, UTF-8 decoding, stop matching, events), with as many slots as the largest B;
  * bare: a plain loop over llama-cpp-python's low-level API: the B prompts in one decode, then one
    `llama_decode` per step holding one token of each sequence, sampled by the same sampler chains,
    nothing else (this machine's limit for batched decoding);
  * server: `python -m llama_cpp.server` (the peer a user would otherwise run), B concurrent
    streaming `/v1/chat/completions` clients.
  Per-stream tokens/s = a stream's tokens ÷ (its last token − its request); aggregate = all tokens ÷
  (last token of any − first request). Medians over `--runs` runs; engines alternate within a run.
- Time to first token against history length (0, 1k, 3k tokens of earlier conversation), through
  our provider: "cold" is a conversation no slot has seen (`Engine.forget()` first); "next turn" is
  the same conversation's next question right after its previous answer, as a chat does it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from common import RESULTS, bench_text, fmt, free_port, median, start_process, stop_process, table, write_result
from response_streaming.config import Settings
from response_streaming.events import Message, Params, TextDelta
from response_streaming.providers import local
from response_streaming.providers.local import LocalProvider
from response_streaming.providers.local.engine import PENALTY_LAST_N

PROMPTS = [
    f"Write a long story about {who} that go on an adventure to the old lighthouse:"
    for who in (
        "two cats",
        "three dogs",
        "a fox and a crow",
        "two sailors",
        "a girl and her robot",
        "four mice",
        "an old horse",
        "two owls",
    )
]
QUESTION = "Summarise what we talked about in one sentence."


def sampling(provider: LocalProvider) -> dict:
    return {
        "temperature": provider.loaded.temperature,
        "top_p": local.DEFAULT_TOP_P,
        "top_k": local.TOP_K,
        "repeat_penalty": provider.loaded.repeat_penalty,
    }


def summarise(starts: list[float], stamps: list[list[float]]) -> dict:
    counts = [len(s) for s in stamps]
    per = [len(s) / (s[-1] - t0) for s, t0 in zip(stamps, starts, strict=True) if s]
    last = max((s[-1] for s in stamps if s), default=None)
    aggregate = sum(counts) / (last - min(starts)) if last is not None else None
    return {"per_stream": median(per), "aggregate": aggregate, "tokens": counts}


# ---------------------------------------------------------------- ours


def run_ours(provider: LocalProvider, prompts: list[str], n: int) -> dict:
    b = len(prompts)
    provider.engine.forget()  # the prompts are read again, as the other two engines do (no prefix reuse here)
    starts, stamps = [0.0] * b, [[] for _ in range(b)]
    s = sampling(provider)

    def one(i: int) -> None:
        starts[i] = time.perf_counter()
        for e in provider.stream(
            [Message("user", prompts[i])], Params(max_tokens=n, temperature=s["temperature"], top_p=s["top_p"])
        ):
            if isinstance(e, TextDelta):
                stamps[i].append(time.perf_counter())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return summarise(starts, stamps)


# ---------------------------------------------------------------- bare batched loop


class Bare:
    """The least a batched llama.cpp loop can do: decode, sample, repeat. Same context shape as ours."""

    def __init__(self, path: Path, n_ctx: int, threads: int, slots: int, samp: dict) -> None:
        import llama_cpp as L

        self.L = L
        self.model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx * slots, 512, 512, slots
        cp.n_threads = cp.n_threads_batch = threads
        cp.kv_unified, cp.swa_full, cp.no_perf = False, True, True
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.vocab = L.llama_model_get_vocab(self.model)
        self.mem = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(512, 0, 1)
        self.samp = samp

    def chain(self):
        L, s = self.L, self.samp
        c = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        L.llama_sampler_chain_add(
            c,
            L.llama_sampler_init_penalties(
                L.llama_vocab_n_tokens(self.vocab), PENALTY_LAST_N, s["repeat_penalty"], 0.0, 0.0
            ),
        )
        L.llama_sampler_chain_add(c, L.llama_sampler_init_top_k(s["top_k"]))
        L.llama_sampler_chain_add(c, L.llama_sampler_init_top_p(s["top_p"], 1))
        L.llama_sampler_chain_add(c, L.llama_sampler_init_temp(s["temperature"]))
        L.llama_sampler_chain_add(c, L.llama_sampler_init_dist(L.LLAMA_DEFAULT_SEED))
        return c

    def put(self, i, token, pos, seq, logits):
        b = self.batch
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq

    def run(self, prompts: list[list[int]], n: int) -> dict:
        L = self.L
        b = len(prompts)
        L.llama_memory_clear(self.mem, True)
        chains = [self.chain() for _ in range(b)]
        starts = [time.perf_counter()] * b
        stamps: list[list[float]] = [[] for _ in range(b)]
        k, rows = 0, []
        for seq, p in enumerate(prompts):  # all prompts in one decode (they are short)
            for pos, t in enumerate(p):
                self.put(k, t, pos, seq, pos == len(p) - 1)
                k += 1
            rows.append(k - 1)
        self.batch.n_tokens = k
        assert L.llama_decode(self.ctx, self.batch) == 0
        pos = [len(p) for p in prompts]
        for _ in range(n):
            tokens = [L.llama_sampler_sample(chains[s], self.ctx, rows[s]) for s in range(b)]
            now = time.perf_counter()
            for s in range(b):
                stamps[s].append(now)
                self.put(s, tokens[s], pos[s], s, True)
                pos[s] += 1
            rows = list(range(b))
            self.batch.n_tokens = b
            assert L.llama_decode(self.ctx, self.batch) == 0
        for c in chains:
            L.llama_sampler_free(c)
        return summarise(starts, stamps)


# ---------------------------------------------------------------- llama-cpp-python's server


def run_server(base: str, prompts: list[str], n: int, samp: dict) -> dict:
    """B streaming `/v1/completions` clients, each with the exact prompt text ours builds (the server's own
    chat formatting would differ per model, and ends Gemma's turn at once)."""
    b = len(prompts)
    starts, stamps = [0.0] * b, [[] for _ in range(b)]

    def one(i: int) -> None:
        body = {"prompt": prompts[i], "max_tokens": n, "stream": True, **samp}
        starts[i] = time.perf_counter()
        with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=600) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0].get("text"):
                    stamps[i].append(time.perf_counter())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return summarise(starts, stamps)


def start_server(path: Path, n_ctx: int, threads: int, log: Path):
    port = free_port()
    proc = start_process(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            "--verbose",
            "false",
            # Its default cancels a running answer when another request comes in; queue instead.
            "--interrupt_requests",
            "false",
        ],
        {},
        f"http://127.0.0.1:{port}/v1/models",
        log,
    )
    return proc, f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- time to first token


def history(provider: LocalProvider, tokens: int) -> list[Message]:
    """Earlier turns of about `tokens` tokens (bench text in user/assistant pairs)."""
    paras = [p for p in bench_text().split("\n\n") if p.strip()]
    msgs: list[Message] = []
    count, i = 0, 0
    while count < tokens:
        text = paras[i % len(paras)]
        msgs.append(Message("user" if len(msgs) % 2 == 0 else "assistant", text))
        count += len(provider.engine.tokenize(text)) + 5
        i += 1
    if msgs and msgs[-1].role == "user":
        msgs.append(Message("assistant", "I see."))
    return msgs


def ttft(provider: LocalProvider, msgs: list[Message]) -> float:
    start = time.perf_counter()
    stream = provider.stream(msgs, Params(max_tokens=2, temperature=0.0))
    try:
        for e in stream:
            if isinstance(e, TextDelta):
                return time.perf_counter() - start
    finally:
        stream.close()
    return float("nan")


def ttft_rows(provider: LocalProvider, lengths: list[int], runs: int) -> tuple[list[list[str]], dict]:
    rows, raw = [], {}
    engine = provider.engine
    for n in lengths:
        before = history(provider, n) if n else []
        first = before + [Message("user", "What was the last thing I said about the lighthouse?")]
        cold, warm, prompt = [], [], 0
        for _ in range(runs):
            engine.forget()
            answer = "".join(
                e.text
                for e in provider.stream(first, Params(max_tokens=24, temperature=0.0))
                if isinstance(e, TextDelta)
            )
            turn = first + [Message("assistant", answer), Message("user", QUESTION)]
            warm.append(ttft(provider, turn))  # the next turn, right after the previous answer
            engine.forget()
            cold.append(ttft(provider, turn))  # the same prompt, no slot has seen it
            prompt = len(provider.loaded.format.fit(turn, provider.loaded.system, 10**9))
        raw[n] = {"cold": cold, "next_turn": warm, "prompt_tokens": prompt}
        rows.append([fmt(n), fmt(prompt), fmt(median(cold), 2), fmt(median(warm), 2)])
    new = raw[lengths[0]]["cold"] if lengths and lengths[0] == 0 else None
    if new:
        for row, n in zip(rows, lengths, strict=True):
            row.append(fmt(median(raw[n]["next_turn"]) / median(new), 2))
    return rows, raw


# ---------------------------------------------------------------- main


def throughput(model: str, args) -> tuple[list[list[str]], dict]:
    settings = Settings(
        provider="local",
        local_model=model,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        local_parallel=max(args.batches),
        queue_size=0,
    )
    provider = LocalProvider(settings)
    samp = sampling(provider)
    pf, system = provider.loaded.format, provider.loaded.system

    def prompts_for(tag: str) -> tuple[list[str], list[list[int]], list[str]]:
        """The B prompts as words (ours), tokens (bare) and text (the server: our render, holes filled; it adds
        BOS). A tag per run makes each prompt new to every engine: llama_cpp.server reuses the last prompt's KV."""
        words = [f"({tag}) {p}" for p in PROMPTS]
        tokens = [pf.fit([Message("user", w)], system, 10**9) for w in words]
        texts = [
            pf.render([Message("user", w)], system).replace("\x000\x00", w).replace("\x001\x00", system) for w in words
        ]
        return words, tokens, texts

    bare = Bare(provider.engine.path, args.n_ctx, args.threads, max(args.batches), samp)
    log = Path(tempfile.gettempdir()) / f"bench-llama-server-{model}.log"  # llama.cpp is chatty: not in results/
    proc, base = start_server(provider.engine.path, args.n_ctx, args.threads, log)
    raw: dict = {}
    try:
        # Warm-up: the first decode of each engine pays for page faults and buffer allocation.
        words, tokens, texts = prompts_for("warm-up")
        run_server(base, texts[:1], 4, samp)
        run_ours(provider, words[:1], 4)
        bare.run(tokens[:1], 4)
        for b in args.batches:
            raw[b] = {"ours": [], "bare": [], "server": []}
            order = ["ours", "bare", "server"] if b <= args.server_max_b else ["ours", "bare"]
            for r in range(args.runs):
                words, tokens, texts = prompts_for(f"B{b} run {r + 1}")
                # Each run starts with another engine: a machine shared with others drifts over minutes.
                for name in order[r % len(order) :] + order[: r % len(order)]:
                    if name == "ours":
                        raw[b][name].append(run_ours(provider, words[:b], args.tokens))
                    elif name == "bare":
                        raw[b][name].append(bare.run(tokens[:b], args.tokens))
                    else:
                        raw[b][name].append(run_server(base, texts[:b], args.tokens, samp))
                print(f"{model} B={b}: run {r + 1} done", file=sys.stderr, flush=True)
    finally:
        stop_process(proc)
    rows = []
    for b in args.batches:
        m = {
            k: (median(r["per_stream"] for r in v), median(r["aggregate"] for r in v)) if v else (None, None)
            for k, v in raw[b].items()
        }
        one_bare = median(r["aggregate"] for r in raw[args.batches[0]]["bare"])
        rows.append(
            [
                model,
                str(b),
                fmt(m["ours"][0], 1),
                fmt(m["bare"][0], 1),
                fmt(m["server"][0], 1),
                fmt(m["ours"][1], 1),
                fmt(m["bare"][1], 1),
                fmt(m["server"][1], 1),
                fmt(m["ours"][1] / m["bare"][1], 2),
                fmt(m["bare"][1] / one_bare, 2),
                fmt(m["ours"][1] / m["server"][1], 2) if m["server"][1] else "–",
            ]
        )
    return rows, raw


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2,gemma3", help="bundled models, comma-separated")
    ap.add_argument("--batches", default="1,2,4,8", help="concurrent answers, comma-separated")
    ap.add_argument("--tokens", type=int, default=128, help="tokens asked of each answer")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--history", default="0,1000,3000", help="history lengths (tokens) for time to first token")
    ap.add_argument("--ttft-runs", type=int, default=3)
    ap.add_argument("--server-max-b", type=int, default=8, help="largest B tried on llama_cpp.server (it serialises)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--n-ctx", type=int, default=4096, help="context per slot")
    ap.add_argument("--out", type=Path, default=RESULTS / "engine.md")
    args = ap.parse_args(argv)
    args.batches = [int(x) for x in args.batches.split(",")]
    lengths = [int(x) for x in args.history.split(",")]
    tp_rows, ttft_all, raw = [], [], {}
    for model in args.models.split(","):
        rows, raw[model] = throughput(model, args)
        tp_rows += rows
        provider = LocalProvider(
            Settings(
                provider="local",
                local_model=model,
                n_ctx=args.n_ctx,
                n_threads=args.threads,
                local_parallel=max(args.batches),
                queue_size=0,
            )
        )
        t_rows, raw[f"{model}-ttft"] = ttft_rows(provider, lengths, args.ttft_runs)
        ttft_all += [[model] + r for r in t_rows]
    args.out.with_suffix(".json").write_text(
        json.dumps({"throughput": tp_rows, "ttft": ttft_all, "raw": raw}, indent=1, default=str)
    )
    body = "\n\n".join(
        [
            f"Throughput, {args.threads} threads, {args.tokens} tokens asked of each answer, "
            f"medians of {args.runs} runs (tokens/s; ours and bare decode B sequences per step, "
            "the server one request at a time):",
            table(
                [
                    "model",
                    "B",
                    "ours per stream",
                    "bare per stream",
                    "server per stream",
                    "ours aggregate",
                    "bare aggregate",
                    "server aggregate",
                    "ours ÷ bare",
                    "bare ÷ bare B=1",
                    "ours ÷ server",
                ],
                tp_rows,
            ),
            f"Time to first token through our provider (seconds, medians of {args.ttft_runs}), against the history "
            "before the question; the last column is the next turn ÷ a new conversation's cold TTFT:",
            table(
                ["model", "history tokens", "prompt tokens", "cold", "next turn (prefix reused)", "next turn ÷ new"],
                ttft_all,
            ),
        ]
    )
    command = "python bench/engine.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return write_result(
        "engine", "Embedded engine: ours vs a bare batched loop vs llama_cpp.server", command.strip(), body, args.out
    )


if __name__ == "__main__":
    main()

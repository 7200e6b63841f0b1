"""The batched llama.cpp engine: one context, one thread, several answers decoded together.

Why this shape (measured, see shared/DESIGN.md and bench/README.md):
- A step of one `llama_decode` holding one token of each of B sequences costs little more than a
  step of one: on 2 cores, 4 sequences give 1.6× (SmolLM2) to 2.3× (Gemma) the tokens/s of one.
  So every active answer joins the same decode; answers join and leave between steps.
- The context belongs to one thread (the engine's). Requests come in through `submit`, tokens go out
  through each request's own queue; the requesting generator does the text work (UTF-8, stop
  sequences) in its own thread, while the engine is in `llama_decode` (ctypes drops the GIL there).
- Each slot is one llama.cpp sequence with its own part of the KV cache (`kv_unified=False`: a
  slot's room is guaranteed, and attention reads only its own cells). A finished slot keeps its KV:
  the next request takes the free slot sharing the longest token prefix with its prompt, so the
  next turn of a conversation re-reads only what is new.
- A long prompt is fed in chunks, so answers already streaming still get a token every step.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp as L

from ...errors import ConfigError, ProviderUnavailable, Throttled

N_BATCH = 512  # tokens per decode; also the largest prompt chunk when no answer is streaming
PREFILL_BUSY = 128  # the prompt chunk per step while other answers stream (≈0.3–0.5 s of their wait)
# Answer tokens the repeat penalty looks back over. llama.cpp's default, 64, is shorter than a paragraph:
# SmolLM2 then wrote the same 100-token paragraph again and again in long stories.
PENALTY_LAST_N = 256
RELEASE_WAIT = 30.0  # seconds a closing stream waits for the engine to give its slot back


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    seed: int = L.LLAMA_DEFAULT_SEED  # "random"


@dataclass(frozen=True)
class End:
    """The engine's last word on a request: why it stopped, and the token counts."""

    reason: str  # "end_turn" (an end-of-turn token) or "max_tokens"
    prompt_tokens: int
    output_tokens: int
    reused_tokens: int  # prompt tokens whose KV was already in the slot (prefix reuse)


@dataclass(eq=False)
class Request:
    tokens: list[int]
    budget: int
    sampling: Sampling
    end_tokens: frozenset[int]
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # bytes pieces, then an End or an error
    cancelled: bool = False
    released: threading.Event = field(default_factory=threading.Event)  # the engine holds nothing of it any more
    reused: int = 0


@dataclass(eq=False)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # exactly the tokens whose KV this sequence holds
    req: Request | None = None
    started: bool = False
    fed: int = 0  # prompt tokens of `req` in the KV so far
    pending: int | None = None  # sampled, shown, not yet decoded into the KV
    produced: int = 0
    chain: object = None
    used: float = 0.0
    out_index: int = -1  # this slot's row in the current batch's logits, -1 if none


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Engine:
    """One loaded model and context with `parallel` slots, driven by one daemon thread."""

    def __init__(self, path: Path, n_ctx: int, threads: int, parallel: int) -> None:
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter off stderr
        L.llama_backend_init()
        self.path = path
        self.parallel = parallel
        self.model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
        if not self.model:
            raise ConfigError(
                f"llama.cpp could not load {path}: the file is damaged or of an unsupported architecture."
            )
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx * parallel  # split per sequence below: each slot gets n_ctx
        cp.n_batch = cp.n_ubatch = N_BATCH
        cp.n_seq_max = parallel
        cp.n_threads = cp.n_threads_batch = threads
        cp.kv_unified = False
        cp.swa_full = True  # sliding-window models (Gemma 3) keep every position, so a prefix can be reused
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise ConfigError(
                f"llama.cpp could not create a context for {path} (n_ctx={n_ctx} × {parallel} slots); "
                "lower RS_N_CTX or RS_LOCAL_PARALLEL."
            )
        self.vocab = L.llama_model_get_vocab(self.model)
        self.mem = L.llama_get_memory(self.ctx)
        self.n_ctx_seq = L.llama_n_ctx_seq(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.batch = L.llama_batch_init(N_BATCH, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self.slots = [Slot(i) for i in range(parallel)]
        self.waiting: deque[Request] = deque()
        self.cond = threading.Condition()
        # Counters that tests and the bench read.
        self.steps = 0  # decodes done
        self.max_batch = 0  # most sequences sampled in one decode so far
        self.admitted = 0  # requests that got a slot
        self.last_reused = 0  # prompt tokens the latest started request found in its slot's KV
        self._forget = False
        threading.Thread(target=self._loop, name=f"llama-engine-{path.name}", daemon=True).start()

    # --- the model's vocabulary (read-only: safe from any thread) --------------------------------

    def tokenize(self, text: str, special: bool = False, add_bos: bool = False) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (L.llama_token * size)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
        if n < 0:
            size = -n
            buf = (L.llama_token * size)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
        return list(buf[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        cached = self._pieces.get(token) if not special else None
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        out = buf.raw[:n]
        if not special:
            self._pieces[token] = out
        return out

    def is_control(self, token: int) -> bool:
        return bool(L.llama_vocab_get_attr(self.vocab, token) & L.LLAMA_TOKEN_ATTR_CONTROL)

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    # --- requests (any thread) --------------------------------------------------------------------

    def submit(self, req: Request, queue_size: int) -> None:
        """Queue a request for a slot, or refuse it when `queue_size` requests already wait."""
        with self.cond:
            free = sum(s.req is None for s in self.slots)
            if len(self.waiting) >= free + queue_size:
                raise Throttled("The local model is busy with other requests; try again in a moment.")
            self.waiting.append(req)
            self.cond.notify_all()

    def release(self, req: Request, wait: bool = True) -> None:
        """The requester is done with `req` (finished, stopped, or gone): give its slot back.

        A queued request is dropped at once and never takes a slot. A running one is dropped by the
        engine before its next step; `wait` waits for that, so a closed stream has freed its slot.
        """
        with self.cond:
            if req in self.waiting:
                self.waiting.remove(req)
                req.released.set()
            req.cancelled = True
            self.cond.notify_all()
        if wait:
            req.released.wait(RELEASE_WAIT)

    def forget(self) -> None:
        """Drop the KV cache kept in idle slots (benchmarks and tests measure cold prompts with it)."""
        with self.cond:
            self._forget = True
            self.cond.notify_all()
            self.cond.wait_for(lambda: not self._forget, timeout=RELEASE_WAIT)

    def busy(self) -> bool:
        """Whether any request holds a slot or waits for one."""
        with self.cond:
            return bool(self.waiting) or any(s.req is not None for s in self.slots)

    # --- the engine thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.waiting and not any(s.req for s in self.slots) and not self._forget:
                    self.cond.wait()
                if self._forget:
                    for slot in self.slots:
                        if slot.req is None:
                            L.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                            slot.tokens.clear()
                    self._forget = False
                    self.cond.notify_all()
                self._admit()
            try:
                self._step()
            except Exception as err:  # a bug or a llama.cpp failure: fail the running requests, keep serving
                logging.getLogger(__name__).exception("local engine step failed")
                self._fail_all(ProviderUnavailable(f"The local model failed ({type(err).__name__}); try again."))

    def _admit(self) -> None:
        """Move waiting requests into free slots (called with the lock held)."""
        free = [s for s in self.slots if s.req is None]
        while self.waiting and free:
            req = self.waiting.popleft()
            if req.cancelled:
                req.released.set()
                continue
            # The free slot that already holds the longest prefix of this prompt; else the least recently used.
            best = max(free, key=lambda s: (common_prefix(s.tokens, req.tokens), -s.used))
            free.remove(best)
            best.req, best.started = req, False
            self.admitted += 1

    def _start(self, slot: Slot) -> None:
        req = slot.req
        assert req is not None
        # Keep the shared prefix; at least the prompt's last token is decoded again, for its logits.
        keep = min(common_prefix(slot.tokens, req.tokens), len(req.tokens) - 1)
        if not L.llama_memory_seq_rm(self.mem, slot.seq, keep, -1):
            L.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
            keep = 0
        del slot.tokens[keep:]
        slot.fed = req.reused = self.last_reused = keep
        slot.pending, slot.produced, slot.started = None, 0, True
        # The repeat penalty sees only the answer's own tokens: over the prompt too, it kept SmolLM2 from
        # the question's words ("What is the capital of France?" got "Le Grand Paris, ..." instead of
        # "The capital of France is Paris.").
        slot.chain = self._chain(req.sampling)

    def _chain(self, s: Sampling):
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        add = L.llama_sampler_chain_add
        add(chain, L.llama_sampler_init_penalties(self.n_vocab, PENALTY_LAST_N, s.repeat_penalty, 0.0, 0.0))
        if s.temperature <= 0:
            add(chain, L.llama_sampler_init_greedy())
        else:
            add(chain, L.llama_sampler_init_top_k(s.top_k))
            add(chain, L.llama_sampler_init_top_p(s.top_p, 1))
            add(chain, L.llama_sampler_init_temp(s.temperature))
            add(chain, L.llama_sampler_init_dist(s.seed))
        return chain

    def _free(self, slot: Slot, last: object | None = None) -> None:
        """End the slot's request: send `last` (an End or an error) unless the requester left."""
        req = slot.req
        if slot.chain is not None:
            L.llama_sampler_free(slot.chain)
            slot.chain = None
        slot.used = time.monotonic()
        with self.cond:
            slot.req = None
        if req is not None:
            if last is not None and not req.cancelled:
                req.out.put(last)
            req.released.set()

    def _step(self) -> None:
        b = self.batch
        n = 0
        for slot in self.slots:
            slot.out_index = -1
            req = slot.req
            if req is None:
                continue
            if req.cancelled:  # Stop, or the client left: the slot is free for the next step
                self._free(slot)
                continue
            if not slot.started:
                self._start(slot)
            if slot.pending is not None:
                self._put(n, slot.pending, len(slot.tokens), slot.seq, True)
                slot.tokens.append(slot.pending)
                slot.pending, slot.out_index = None, n
                n += 1
        # Prompt chunks fill the rest of the batch; small while answers are streaming, so they keep flowing.
        room = N_BATCH - n if n == 0 else min(PREFILL_BUSY, N_BATCH - n)
        for slot in self.slots:
            req = slot.req
            if req is None or req.cancelled or slot.fed >= len(req.tokens) or room <= 0:
                continue
            take = min(room, len(req.tokens) - slot.fed)
            for t in req.tokens[slot.fed : slot.fed + take]:
                slot.fed += 1
                last = slot.fed == len(req.tokens)
                self._put(n, t, len(slot.tokens), slot.seq, last)
                slot.tokens.append(t)
                if last:
                    slot.out_index = n
                n += 1
            room -= take
        if n == 0:
            return
        b.n_tokens = n
        rc = L.llama_decode(self.ctx, b)
        self.steps += 1
        if rc != 0:
            for slot in self.slots:
                if slot.req is not None and slot.started:
                    L.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                    slot.tokens.clear()
                    self._free(
                        slot,
                        ProviderUnavailable(
                            f"The local model could not compute the next token (llama_decode {rc}); try again."
                        ),
                    )
            return
        sampled = 0
        for slot in self.slots:
            if slot.out_index < 0 or slot.req is None:
                continue
            req = slot.req
            token = L.llama_sampler_sample(slot.chain, self.ctx, slot.out_index)
            sampled += 1
            if L.llama_vocab_is_eog(self.vocab, token) or token in req.end_tokens:
                self._free(slot, End("end_turn", len(req.tokens), slot.produced, req.reused))
                continue
            slot.produced += 1
            req.out.put(self.piece(token))
            slot.pending = token
            if slot.produced >= req.budget:
                self._free(slot, End("max_tokens", len(req.tokens), slot.produced, req.reused))
        self.max_batch = max(self.max_batch, sampled)

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits

    def _fail_all(self, err: Exception) -> None:
        for slot in self.slots:
            if slot.req is not None:
                L.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                slot.tokens.clear()
                self._free(slot, err)

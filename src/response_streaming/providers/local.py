"""The embedded model: llama.cpp (llama-cpp-python) over a GGUF file, in this process.

Pure parts (prompt building, stop-sequence matching) are module functions; `LocalProvider.stream`
is the only I/O. Facts that shape it (see shared/DESIGN.md):
- Gemma 3 270M as bundled is a *base* model: it continues text. So a conversation is written as a
  plain transcript ending in "Assistant:", and the next "User:" line is a stop sequence.
- `create_completion` re-detokenizes the whole completion on every token (quadratic). We loop over
  `Llama.generate` and decode each token's bytes incrementally: linear in answer length.
- One llama context serves one generation at a time: one model per process, one lock, and a bounded
  number of waiters so a server can answer "busy" instead of queueing forever.
"""
from __future__ import annotations

import codecs
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ..config import Settings
from ..errors import BadRequest, ConfigError, Throttled
from ..events import Event, Finish, Message, Params, TextDelta, Usage
from ..modelfile import bundled_model_path, check_gguf

# Sampling that keeps a small base model from looping; a user's temperature/top_p override these.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
TOP_K = 40
REPEAT_PENALTY = 1.2
TRANSCRIPT_STOPS = ("\nUser:", "\nAssistant:")


def build_prompt(messages: Sequence[Message], system: str = "") -> str:
    """A plain transcript; the model continues after the final "Assistant:".

    When the last message is the assistant's (a cut-off answer to continue), the transcript ends
    with that text, so the base model writes straight on from it.
    """
    lines = [system.strip(), ""] if system.strip() else []
    for m in messages:
        speaker = "User" if m.role == "user" else "Assistant"
        lines.append(f"{speaker}: {m.content.strip()}")
    if not messages or messages[-1].role == "user":
        lines.append("Assistant:")
    return "\n".join(lines)


class StopMatcher:
    """Finds stop sequences in streamed text without showing a stop sequence's first characters.

    Text that could be the start of a stop sequence is held back until the next piece decides it.
    `feed` returns (text safe to emit, whether a stop sequence was reached).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""
        self.matched = ""  # the stop sequence that ended the text, once one has

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        buf = self.held + text
        hits = [(i, s) for s in self.stops if (i := buf.find(s)) >= 0]
        if hits:
            cut, self.matched = min(hits)
            self.held = ""
            return buf[:cut], True
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self.held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


@dataclass
class _Engine:
    """One loaded model and the lock that serialises its use."""

    llm: object
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    guard: threading.Lock = field(default_factory=threading.Lock)  # protects `waiting`
    waiting: int = 0


_engines: dict[tuple, _Engine] = {}
_engines_lock = threading.Lock()


def resolve_model_path(settings: Settings, progress: bool = False) -> Path:
    if settings.model_path:
        return check_gguf(Path(settings.model_path).expanduser())
    return bundled_model_path(settings.cache_dir, progress=progress)


def load_engine(settings: Settings, progress: bool = False) -> _Engine:
    """Load the model once per process (per file and size); later calls return the same engine."""
    path = resolve_model_path(settings, progress)
    threads = settings.n_threads or os.cpu_count() or 1
    key = (str(path), settings.n_ctx, threads)
    with _engines_lock:
        if key not in _engines:
            try:
                from llama_cpp import Llama
            except ImportError as err:
                raise ConfigError("llama-cpp-python is not installed: run `make run` or `pip install 'response-streaming[local]'`.") from err
            try:
                llm = Llama(model_path=str(path), n_ctx=settings.n_ctx, n_threads=threads,
                            n_threads_batch=threads, verbose=False)
            except (ValueError, RuntimeError) as err:
                raise ConfigError(f"llama.cpp could not load {path}: the file is damaged or of an unsupported architecture.") from err
            _engines[key] = _Engine(llm=llm, path=path)
        return _engines[key]


class LocalProvider:
    name = "local"
    continues_in_place = True  # a conversation ending with the assistant's words is continued, not answered

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = load_engine(settings)
        self.model = settings.model or self.engine.path.name

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        engine = self.engine
        self._acquire(engine)
        gen = None
        try:
            llm = engine.llm
            started = time.monotonic()
            prompt = self._fit(llm, messages, params)
            budget = min(params.max_tokens, llm.n_ctx() - len(prompt))
            if budget <= 0:
                raise BadRequest("The conversation is too long for the local model's context window; start a new conversation.")
            from llama_cpp import llama_vocab_is_eog

            temperature = DEFAULT_TEMPERATURE if params.temperature is None else params.temperature
            top_p = DEFAULT_TOP_P if params.top_p is None else params.top_p
            gen = llm.generate(prompt, temp=temperature, top_p=top_p, top_k=TOP_K, repeat_penalty=REPEAT_PENALTY)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            stops = StopMatcher(TRANSCRIPT_STOPS + tuple(params.stop))
            vocab = llm._model.vocab  # the public API has no EOG check; this is what create_completion uses
            produced, reason, first = 0, "max_tokens", True
            for token in gen:
                if llama_vocab_is_eog(vocab, token):
                    reason = "end_turn"
                    break
                produced += 1
                text, stopped = stops.feed(decoder.decode(llm.detokenize([token])))
                if first:
                    # A transcript answer starts after "Assistant:"; the space the model puts there is not content.
                    text = text.lstrip(" ")
                    first = not text
                if text:
                    yield TextDelta(text)
                if stopped:
                    # The next transcript turn means the model finished its own turn; a user's stop is a stop sequence.
                    reason = "end_turn" if stops.matched in TRANSCRIPT_STOPS else "stop_sequence"
                    break
                if produced >= budget:
                    break
            tail = "" if stops.matched else stops.flush() + decoder.decode(b"", final=True)
            tail = tail.lstrip(" ") if first else tail
            if tail:
                yield TextDelta(tail)
            yield Usage(input_tokens=len(prompt), output_tokens=produced)
            yield Finish(reason, latency_ms=int((time.monotonic() - started) * 1000))
        finally:
            if gen is not None:
                gen.close()
            engine.lock.release()

    def _acquire(self, engine: _Engine) -> None:
        with engine.guard:
            if engine.lock.acquire(blocking=False):
                return
            if engine.waiting >= self.settings.queue_size:
                raise Throttled("The local model is busy with other requests; try again in a moment.")
            engine.waiting += 1
        try:
            engine.lock.acquire()
        finally:
            with engine.guard:
                engine.waiting -= 1

    def _fit(self, llm, messages: Sequence[Message], params: Params) -> list[int]:
        """Tokenize the transcript, dropping the oldest turns until the answer has room."""
        msgs = list(messages)
        if not msgs or not msgs[-1].content.strip():
            raise BadRequest("The prompt is empty: type a question or some text to continue.")
        room = llm.n_ctx() - min(params.max_tokens, llm.n_ctx() // 2)
        while True:
            tokens = llm.tokenize(build_prompt(msgs, params.system).encode("utf-8"), add_bos=True)
            if len(tokens) <= room or len(msgs) == 1:
                return tokens
            msgs = msgs[2:] if len(msgs) > 2 else msgs[-1:]

"""The embedded model: llama.cpp (llama-cpp-python's low-level API) over a GGUF file, in this process.

- `models.py`: the bundled models (one table) and how settings pick a verified GGUF file.
- `templates.py`: messages to prompt tokens (the GGUF's chat template or a plain transcript), stops.
- `engine.py`: one context per model and process, several answers decoded together in one batch,
  each slot keeping its KV cache for the conversation's next turn.
- here: `LocalProvider.stream`, which turns the engine's token bytes into events. UTF-8 is decoded
  incrementally and stop sequences matched on each new piece only: linear in answer length.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING

from ...config import Settings
from ...errors import BadRequest, ConfigError
from ...events import Event, Finish, Message, Params, StopReason, TextDelta, Usage
from ...reasoning import split_inline_reasoning
from .models import BUNDLED, DEFAULT_MODEL, BundledModel, bundled_choices, chosen_bundle, resolve_model_path
from .templates import TRANSCRIPT_STOPS, PromptFormat, StopMatcher, build_prompt, check_template

if TYPE_CHECKING:
    from .engine import Request

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "TRANSCRIPT_STOPS",
    "LocalProvider",
    "StopMatcher",
    "build_prompt",
    "bundled_choices",
    "load_engine",
    "resolve_model_path",
]

# Sampling when a request says nothing; bundled models carry their own temperature and repeat penalty
# (models.py), a GGUF given by path gets these. A user's temperature/top_p override them.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
TOP_K = 40
REPEAT_PENALTY = {"chat": 1.1, "transcript": 1.2}


class _Loaded:
    """An engine and how prompts are built for its model."""

    def __init__(self, engine, fmt: PromptFormat, end_tokens: frozenset[int], bundle: BundledModel | None) -> None:
        self.engine, self.format, self.end_tokens = engine, fmt, end_tokens
        # What a request that says nothing gets.
        self.repeat_penalty = bundle.repeat_penalty if bundle else REPEAT_PENALTY[fmt.kind]
        self.temperature = bundle.temperature if bundle else DEFAULT_TEMPERATURE
        self.system = bundle.system if bundle else ""


_loaded: dict[tuple, _Loaded] = {}
_loaded_lock = threading.Lock()


def load_engine(settings: Settings, progress: bool = False) -> _Loaded:
    """Load the model once per process (per file, context size, threads and slots)."""
    path = resolve_model_path(settings, progress)
    bundle = chosen_bundle(settings)
    threads = settings.n_threads or os.cpu_count() or 1
    key = (str(path), settings.n_ctx, threads, settings.local_parallel)
    with _loaded_lock:
        if key not in _loaded:
            try:
                from .engine import Engine
            except ImportError as err:
                raise ConfigError(
                    "llama-cpp-python is not installed: run `make run` or `pip install 'response-streaming[local]'`."
                ) from err
            engine = Engine(path, settings.n_ctx, threads, settings.local_parallel)
            template = engine.metadata("tokenizer.chat_template")
            if bundle is not None and bundle.format == "transcript":
                template = None
            elif template and not check_template(template):
                template = None  # a template we can't render: the transcript still works with any model
            bos = _bos_info(engine)
            fmt = PromptFormat(
                tokenize=engine.tokenize, template=template, bos=bos[0], bos_text=bos[1], eos_text=bos[2]
            )
            _loaded[key] = _Loaded(engine, fmt, fmt.end_of_turn(engine.is_control), bundle)
        return _loaded[key]


def _bos_info(engine) -> tuple[list[int], str, str]:
    """(BOS tokens to prepend, BOS text, EOS text) as the vocabulary declares them."""
    import llama_cpp as L

    bos, eos = L.llama_vocab_bos(engine.vocab), L.llama_vocab_eos(engine.vocab)
    bos_text = engine.piece(bos, special=True).decode("utf-8", "replace") if bos >= 0 else ""
    eos_text = engine.piece(eos, special=True).decode("utf-8", "replace") if eos >= 0 else ""
    add = bos >= 0 and L.llama_vocab_get_add_bos(engine.vocab)
    return ([bos] if add else []), bos_text, eos_text


class LocalStream:
    """The events of one answer. An iterator like a generator, whose `close()` also works from another
    thread while the reader waits (for a slot or a token): the request leaves the queue, or its slot
    is freed at the engine's next step, and the waiting reader ends."""

    def __init__(self, provider: LocalProvider, messages: Sequence[Message], params: Params) -> None:
        self._req: Request | None = None
        self._engine = provider.engine
        self._gen = split_inline_reasoning(provider._events(messages, params, self))  # models that think in tags

    def __iter__(self) -> LocalStream:
        return self

    def __next__(self) -> Event:
        return next(self._gen)

    def close(self) -> None:
        req = self._req
        if req is not None:
            self._engine.release(req, wait=False)
            req.out.put(None)  # wakes a reader blocked on this request
        try:
            self._gen.close()
        except ValueError:  # being read in another thread right now: the wake-up above ends it there
            pass


class LocalProvider:
    name = "local"
    continues_in_place = True  # a conversation ending with the assistant's words is continued, not answered

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loaded = load_engine(settings)
        self.engine = self.loaded.engine
        bundle = chosen_bundle(settings)
        self.model = bundle.name if bundle else (settings.model or self.engine.path.name)

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        return LocalStream(self, messages, params)

    def _events(self, messages: Sequence[Message], params: Params, handle: LocalStream) -> Generator[Event, None, None]:
        from .engine import End, Request, Sampling

        loaded, engine = self.loaded, self.engine
        started = time.monotonic()
        n_ctx = engine.n_ctx_seq
        tokens = loaded.format.fit(messages, params.system or loaded.system, n_ctx - min(params.max_tokens, n_ctx // 2))
        budget = min(params.max_tokens, n_ctx - len(tokens))  # never more than the context can still hold
        if budget <= 0:
            raise BadRequest(
                "The conversation is too long for the local model's context window; start a new conversation."
            )
        sampling = Sampling(
            temperature=loaded.temperature if params.temperature is None else params.temperature,
            top_p=DEFAULT_TOP_P if params.top_p is None else params.top_p,
            top_k=TOP_K,
            repeat_penalty=loaded.repeat_penalty,
        )
        req = Request(tokens=tokens, budget=budget, sampling=sampling, end_tokens=loaded.end_tokens)
        engine.submit(req, self.settings.queue_size)
        handle._req = req
        try:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            model_stops = loaded.format.stops
            stops = StopMatcher(model_stops + tuple(params.stop))
            # A transcript answer starts after "Assistant:"; the space the model puts there is not content.
            # A continued answer keeps its first space: it separates the new words from the old.
            strip = messages[-1].role == "user"
            produced, first = 0, True
            reason: StopReason = "max_tokens"
            while True:
                item = req.out.get()
                if item is None:  # closed from another thread
                    return
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, End):
                    reason = "end_turn" if item.reason == "end_turn" else "max_tokens"
                    break
                produced += 1
                text, stopped = stops.feed(decoder.decode(item))
                if first and strip:
                    text = text.lstrip(" ")
                if text:
                    first = False
                    yield TextDelta(text)
                if stopped:
                    # The next transcript turn means the model finished its own turn; a user's stop is a stop sequence.
                    reason = "end_turn" if stops.matched in model_stops else "stop_sequence"
                    break
            tail = "" if stops.matched else stops.flush() + decoder.decode(b"", final=True)
            tail = tail.lstrip(" ") if first and strip else tail
            if tail:
                yield TextDelta(tail)
            yield Usage(input_tokens=len(tokens), output_tokens=produced)
            yield Finish(reason, latency_ms=int((time.monotonic() - started) * 1000))
        finally:
            engine.release(req)

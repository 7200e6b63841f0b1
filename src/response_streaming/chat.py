"""One turn of a conversation, independent of any front end: save, stream, save.

Invariants kept here so every front end keeps them: the user's message is stored before the
provider is called; the assistant's message is stored however the stream ends (complete,
stopped, error, incomplete) with its partial text, its error and its metrics.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Iterator

from .errors import BadRequest
from .events import Message, Params, Provider
from .recorder import Recorder
from .store import Store

STATUS_NOTES = {
    "stopped": "⏹ Stopped: the answer above is partial.",
    "incomplete": "⚠ The stream ended early: the answer above may be cut short.",
}


def history(store: Store, cid: str) -> list[Message]:
    """What the model sees: earlier turns with text (failed answers keep their partial text)."""
    return [Message(m.role, m.content) for m in store.messages(cid) if m.content]


def check_prompt(prompt: str) -> str:
    if not prompt or not prompt.strip():
        raise BadRequest("Please type a prompt first: the input is empty.")
    return prompt


def stream_turn(store: Store, cid: str, provider: Provider, params: Params, prompt: str | None) -> tuple[Recorder, Iterator[str]]:
    """Store the prompt (if any; `None` continues the conversation), then return the live stream.

    The caller iterates the returned iterator and must close it in `finally` (a closed iterator
    records the answer as `stopped`); the answer is stored when the iterator ends.
    """
    if prompt is not None:
        store.add_message(cid, "user", check_prompt(prompt))
    rec = Recorder(provider.stream(history(store, cid), params))

    def run() -> Iterator[str]:
        try:
            yield from rec
        finally:
            meta = {"metrics": rec.metrics.as_dict(), "provider": provider.name, "model": provider.model,
                    "params": asdict(params)}
            store.add_message(cid, "assistant", rec.text, status=rec.status, error=rec.error, meta=meta)

    return rec, run()

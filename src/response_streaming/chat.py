"""One turn of a conversation, independent of any front end: save, stream, save.

Invariants kept here so every front end keeps them: the user's message is stored before the
provider is called; the assistant's message is stored however the stream ends (complete,
stopped, error, incomplete) with its partial text, its error and its metrics; only one answer
streams in a conversation at a time (a lease in the database, so it holds across tabs and replicas).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import asdict
from typing import Sequence

from .errors import BadRequest, Throttled
from .events import Message, Params, Provider
from .recorder import Recorder
from .sanitize import sanitize
from .store import Store, StoredMessage

log = logging.getLogger(__name__)

STATUS_NOTES = {
    "stopped": "Stopped: the answer above is partial.",
    "incomplete": "The stream ended early: the answer above may be cut short.",
}

# A lease outlives any normal pause between two pieces; a crashed holder's lease lapses after it.
LEASE_SECONDS = 120.0
RENEW_EVERY = 15.0

CONTINUE_PROMPT = ("Continue your previous answer exactly where it stopped. Do not repeat anything, "
                   "do not add an introduction.")


class ConversationBusy(Throttled):
    """Another answer is streaming in this conversation (another tab, window or replica)."""


class ConversationChanged(BadRequest):
    """The conversation moved on (in another tab or replica) since the page was drawn."""


def history(store: Store, cid: str) -> list[Message]:
    """What the model sees: earlier turns with text (failed answers keep their partial text)."""
    return [Message(m.role, m.content) for m in store.messages(cid) if m.content]


def check_prompt(prompt: str) -> str:
    if not prompt or not prompt.strip():
        raise BadRequest("Please type a prompt first: the input is empty.")
    return prompt


def join_continuation(before: str, after: str) -> str:
    """Append a continuation, with the space a model drops when it starts a new sentence or word.

    "adven" + "ture" stays one word; "It ended." + "Then" and "in the" + "Garden" get a space.
    """
    if before and after and not before[-1].isspace() and not after[0].isspace():
        if (before[-1] in ".!?:;," and after[0].isalnum()) or (before[-1].isalnum() and after[0].isupper()):
            return before + " " + after
    return before + after


class Turn:
    """A live answer. Iterate it for text pieces; `close()` it in `finally`, always.

    Closing (or exhausting) it saves the answer once, with whatever status the stream reached, and
    frees the conversation. `stop(shown)` may be called from another thread while the stream is
    busy or blocked: it saves the first `shown` pieces (what the reader saw) as `stopped` at once;
    the stream itself is still closed by the thread that iterates it.
    """

    def __init__(self, store: Store, cid: str, provider: Provider, params: Params, messages: Sequence[Message],
                 owner: str, continues: StoredMessage | None = None) -> None:
        self.store, self.cid, self.owner = store, cid, owner
        self.provider, self.params = provider, params
        self.continues = continues
        self.prior = continues.content if continues else ""
        self.recorder = Recorder(provider.stream(list(messages), params))
        self._pieces = iter(self.recorder)
        self._lock = threading.Lock()
        self._saved = False
        self.finished = threading.Event()  # set once the answer is saved and the conversation freed
        self.shown = 0  # pieces a front end has drawn (what `stop` keeps when a reader stops it)
        self._renewed = time.monotonic()

    def __iter__(self) -> "Turn":
        return self

    def __next__(self) -> str:
        try:
            piece = next(self._pieces)
        except StopIteration:
            self._save()
            raise
        if time.monotonic() - self._renewed > RENEW_EVERY:
            self._renewed = time.monotonic()
            self.store.renew(self.cid, self.owner, LEASE_SECONDS)
        return piece

    @property
    def text(self) -> str:
        """The whole answer as it stands (a continued answer includes its earlier part)."""
        return join_continuation(self.prior, self.recorder.text) if self.prior else self.recorder.text

    def close(self) -> None:
        self._pieces.close()  # runs the recorder's finally: status `stopped`, provider stream closed
        if self.recorder.status == "streaming":  # never started: the provider's generator never ran either
            self.recorder.status = "stopped"
            self.recorder.events.close()
        self._save()

    def stop(self, shown: int | None = None) -> None:
        self._save(status="stopped", shown=shown)

    def _save(self, status: str | None = None, shown: int | None = None) -> None:
        with self._lock:
            if self._saved:
                return
            self._saved = True
        try:
            self._write(status, shown)
        except Exception:  # e.g. the conversation was deleted meanwhile, or the database went away
            log.exception("could not save the answer")
        finally:
            try:
                self.store.release(self.cid, self.owner)
            finally:
                self.finished.set()

    def _write(self, status: str | None, shown: int | None) -> None:
        rec = self.recorder
        status = status or (rec.status if rec.status != "streaming" else "stopped")
        metrics = rec.live_metrics()
        new = rec.text
        if shown is not None and shown < len(rec.pieces):
            new = "".join(rec.pieces[:shown])
            if rec.metrics.input_tokens is None:  # no usage report yet: count what is kept
                metrics["output_tokens"] = shown
        if self.continues is None:
            meta = {"metrics": metrics, "provider": self.provider.name, "model": self.provider.model,
                    "params": asdict(self.params)}
            self.store.add_message(self.cid, "assistant", new, status=status, error=rec.error, meta=meta)
            return
        meta = dict(self.continues.meta)
        meta["parts"] = list(meta.get("parts") or [meta.get("metrics", {})]) + [metrics]
        meta["metrics"] = merge_metrics(meta["parts"])
        meta.update(provider=self.provider.name, model=self.provider.model, params=asdict(self.params))
        self.store.update_message(self.continues.id, join_continuation(self.prior, new), status, rec.error, meta)


def merge_metrics(parts: list[dict]) -> dict:
    """One answer written in several requests (continue): tokens add up, the first wait counts."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    out = dict(parts[-1])
    out["ttft_ms"] = parts[0].get("ttft_ms")
    out["duration_ms"] = sum(p.get("duration_ms") or 0 for p in parts)
    out["output_tokens"] = sum(p.get("output_tokens") or 0 for p in parts)
    inputs = [p.get("input_tokens") for p in parts]
    out["input_tokens"] = None if any(i is None for i in inputs) else sum(inputs)
    return out


def _begin(store: Store, cid: str) -> str:
    owner = uuid.uuid4().hex
    if not store.claim(cid, owner, LEASE_SECONDS):
        raise ConversationBusy("An answer is already being written in this conversation (in another tab or window). "
                               "Wait for it to finish or stop it there, then try again.")
    return owner


def start_turn(store: Store, cid: str, provider: Provider, params: Params, prompt: str) -> Turn:
    """A new prompt: stored first, then the model is asked."""
    check_prompt(prompt)
    owner = _begin(store, cid)
    try:
        store.add_message(cid, "user", prompt)
        return Turn(store, cid, provider, params, history(store, cid), owner)
    except BaseException:
        store.release(cid, owner)
        raise


def regenerate_turn(store: Store, cid: str, provider: Provider, params: Params, answer_id: int | None = None) -> Turn:
    """Answer the last prompt again (also Retry after an error): the old answer is replaced."""
    owner = _begin(store, cid)
    try:
        msgs = store.messages(cid)
        users = [m for m in msgs if m.role == "user"]
        after = [m for m in msgs if users and m.id > users[-1].id]
        if not users or (answer_id is not None and [m.id for m in after] != [answer_id]):
            raise ConversationChanged("This conversation changed in another window; reload the page to see it.")
        if after:
            store.delete_messages_from(cid, after[0].id)
        return Turn(store, cid, provider, params, history(store, cid), owner)
    except BaseException:
        store.release(cid, owner)
        raise


def edit_turn(store: Store, cid: str, provider: Provider, params: Params, user_id: int, prompt: str) -> Turn:
    """Replace the last prompt (and its answer) with an edited one, and ask again."""
    check_prompt(prompt)
    owner = _begin(store, cid)
    try:
        users = [m for m in store.messages(cid) if m.role == "user"]
        if not users or users[-1].id != user_id:
            raise ConversationChanged("This conversation changed in another window; reload the page to see it.")
        store.delete_messages_from(cid, user_id)
        store.add_message(cid, "user", prompt)
        return Turn(store, cid, provider, params, history(store, cid), owner)
    except BaseException:
        store.release(cid, owner)
        raise


def continue_turn(store: Store, cid: str, provider: Provider, params: Params, answer_id: int) -> Turn:
    """Ask the model to go on from a cut-off answer; the new text is appended to that same answer.

    A provider that continues a conversation ending with the assistant's own words in place (the
    embedded base model) gets just the history; every other one gets the history plus one
    instruction that is not stored, since not all of them accept an assistant message last.
    """
    owner = _begin(store, cid)
    try:
        msgs = store.messages(cid)
        if not msgs or msgs[-1].id != answer_id or msgs[-1].role != "assistant":
            raise ConversationChanged("This conversation changed in another window; reload the page to see it.")
        if not msgs[-1].content.strip():
            raise BadRequest("There is nothing to continue: the answer is empty. Use Regenerate instead.")
        messages = history(store, cid)
        if not provider.continues_in_place:
            messages.append(Message("user", CONTINUE_PROMPT))
        return Turn(store, cid, provider, params, messages, owner, continues=msgs[-1])
    except BaseException:
        store.release(cid, owner)
        raise


# Export ------------------------------------------------------------------------------------
def export_json(conversation: dict, messages: Sequence[StoredMessage]) -> str:
    """The whole conversation, every field we keep, as JSON (for tools and for the record)."""
    return json.dumps({
        "id": conversation["id"],
        "title": conversation["title"],
        "created_at": _iso(conversation.get("created_at")),
        "messages": [{"role": m.role, "content": m.content, "status": m.status, "error": m.error,
                      "created_at": _iso(m.created_at), **m.meta} for m in messages],
    }, indent=2, ensure_ascii=False, default=str)


def export_markdown(conversation: dict, messages: Sequence[StoredMessage]) -> str:
    """The conversation as a Markdown document a person reads: one section per message."""
    lines = [f"# {' '.join(conversation['title'].split())}", ""]
    for m in messages:
        if m.role == "user":
            lines += ["## You", ""]
        else:
            who = " · ".join(x for x in (m.meta.get("model"), m.meta.get("provider")) if x)
            lines += [f"## Assistant ({who})" if who else "## Assistant", ""]
        lines += [m.content or "_(no text)_", ""]
        if m.status == "error":
            lines += [f"> Error: {' '.join((m.error or '').split())}", ""]
        elif m.status in STATUS_NOTES:
            lines += [f"> {STATUS_NOTES[m.status]}", ""]
    # Whoever renders the file sees what the page shows: no image fetched, no HTML, no unsafe link.
    return sanitize("\n".join(lines))


def _iso(when) -> str | None:
    return when.isoformat() if when is not None else None

"""The turns of a conversation, independent of any front end: save the prompt, start a generation.

Invariants kept here so every front end keeps them: the user's message is stored before the
provider is called; only one answer streams in a conversation at a time (its running generation is
the lease, in the database, so it holds across tabs and replicas). The answer itself is a durable
generation (`generation`): its message is created at once with status `streaming` and written once
when it ends (complete, stopped, error, incomplete, interrupted), whoever watches it or not.

Each function returns the generation id; follow it with `gens.follow(gid)`.

`owner` (sign-in on: `users.principal`) limits every function to that user's conversations: the
store is scoped to them (`Store.scoped`), someone else's conversation is a `ConversationNotFound`
exactly like a missing one, and the generation records the owner as its principal. None (the
single-user app, the CLI) sees every conversation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from .errors import BadRequest, ConversationBusy, ConversationNotFound
from .events import Message, Params, Provider, Role
from .generation import Generations
from .generation.answer import join_continuation, merge_metrics, reasoning_blocks
from .store import NOT_FOUND, Store

__all__ = [
    "CONTINUE_PROMPT",
    "STATUS_NOTES",
    "ConversationBusy",
    "ConversationChanged",
    "check_prompt",
    "continue_turn",
    "edit_turn",
    "history",
    "join_continuation",
    "merge_metrics",
    "regenerate_turn",
    "start_turn",
]

STATUS_NOTES = {
    "stopped": "Stopped: the answer above is partial.",
    "incomplete": "The stream ended early: the answer above may be cut short.",
    "interrupted": "Interrupted: the app stopped while writing this answer; the text above is what was saved.",
}

CONTINUE_PROMPT = (
    "Continue your previous answer exactly where it stopped. Do not repeat anything, do not add an introduction."
)


class ConversationChanged(BadRequest):
    """The conversation moved on (in another tab or replica) since the page was drawn."""


def history(store: Store, cid: str) -> list[Message]:
    """What the model sees: earlier turns with text (failed answers keep their partial text), and the
    thinking each answer kept (each provider decides what of it goes back)."""
    return [Message(cast(Role, m.role), m.content, reasoning_blocks(m.meta)) for m in store.messages(cid) if m.content]


def check_prompt(prompt: str) -> str:
    if not prompt or not prompt.strip():
        raise BadRequest("Please type a prompt first: the input is empty.")
    return prompt


@contextmanager
def _claimed(gens: Generations, store: Store, cid: str) -> Iterator[str]:
    """Claim the conversation (`ConversationBusy` if an answer runs there) for the block; give it back if it fails.

    `ConversationNotFound` first if `store` (scoped to its owner) doesn't see it: nobody streams into
    someone else's conversation, nor into a deleted one.
    """
    if store.get_conversation(cid) is None:
        raise ConversationNotFound(NOT_FOUND)
    gid = gens.reserve(cid, principal=store.owner)
    try:
        yield gid
    except BaseException:
        gens.cancel(gid)
        raise


def _changed() -> ConversationChanged:
    return ConversationChanged("This conversation changed in another window; reload the page to see it.")


def start_turn(
    gens: Generations, cid: str, provider: Provider, params: Params, prompt: str, *, owner: str | None = None
) -> str:
    """A new prompt: stored first, then the model is asked."""
    check_prompt(prompt)
    store = gens.store.scoped(owner)
    with _claimed(gens, store, cid) as gid:
        store.add_message(cid, "user", prompt)
        return gens.start(provider, history(store, cid), params, conversation_id=cid, generation_id=gid)


def regenerate_turn(
    gens: Generations,
    cid: str,
    provider: Provider,
    params: Params,
    answer_id: int | None = None,
    *,
    owner: str | None = None,
) -> str:
    """Answer the last prompt again (also Retry after an error): the old answer is replaced."""
    store = gens.store.scoped(owner)
    with _claimed(gens, store, cid) as gid:
        msgs = store.messages(cid)
        users = [m for m in msgs if m.role == "user"]
        after = [m for m in msgs if users and m.id > users[-1].id]
        if not users or (answer_id is not None and [m.id for m in after] != [answer_id]):
            raise _changed()
        if after:
            store.delete_messages_from(cid, after[0].id)
        return gens.start(provider, history(store, cid), params, conversation_id=cid, generation_id=gid)


def edit_turn(
    gens: Generations,
    cid: str,
    provider: Provider,
    params: Params,
    user_id: int,
    prompt: str,
    *,
    owner: str | None = None,
) -> str:
    """Replace the last prompt (and its answer) with an edited one, and ask again."""
    check_prompt(prompt)
    store = gens.store.scoped(owner)
    with _claimed(gens, store, cid) as gid:
        users = [m for m in store.messages(cid) if m.role == "user"]
        if not users or users[-1].id != user_id:
            raise _changed()
        store.delete_messages_from(cid, user_id)
        store.add_message(cid, "user", prompt)
        return gens.start(provider, history(store, cid), params, conversation_id=cid, generation_id=gid)


def continue_turn(
    gens: Generations, cid: str, provider: Provider, params: Params, answer_id: int, *, owner: str | None = None
) -> str:
    """Ask the model to go on from a cut-off answer; the new text is appended to that same answer.

    A provider that continues a conversation ending with the assistant's own words in place (the
    embedded base model) gets just the history; every other one gets the history plus one
    instruction that is not stored, since not all of them accept an assistant message last.
    """
    store = gens.store.scoped(owner)
    with _claimed(gens, store, cid) as gid:
        msgs = store.messages(cid)
        if not msgs or msgs[-1].id != answer_id or msgs[-1].role != "assistant":
            raise _changed()
        if not msgs[-1].content.strip():
            raise BadRequest("There is nothing to continue: the answer is empty. Use Regenerate instead.")
        messages = history(store, cid)
        if not provider.continues_in_place:
            messages.append(Message("user", CONTINUE_PROMPT))
        return gens.start(
            provider, messages, params, conversation_id=cid, message_id=answer_id, continues=True, generation_id=gid
        )

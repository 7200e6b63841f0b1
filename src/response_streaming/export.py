"""A conversation as a file: JSON for tools and the record, Markdown for people."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .chat import STATUS_NOTES
from .sanitize import sanitize
from .store import StoredMessage


def export_json(conversation: dict, messages: Sequence[StoredMessage]) -> str:
    """The whole conversation, every field we keep, as JSON (for tools and for the record)."""
    return json.dumps(
        {
            "id": conversation["id"],
            "title": conversation["title"],
            "created_at": _iso(conversation.get("created_at")),
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "status": m.status,
                    "error": m.error,
                    "created_at": _iso(m.created_at),
                    **m.meta,
                }
                for m in messages
            ],
        },
        indent=2,
        ensure_ascii=False,
        default=str,
    )


def export_markdown(conversation: dict, messages: Sequence[StoredMessage]) -> str:
    """The conversation as a Markdown document a person reads: one section per message."""
    lines = [f"# {' '.join(conversation['title'].split())}", ""]
    for m in messages:
        if m.role == "user":
            lines += ["## You", ""]
        else:
            who = " · ".join(x for x in (m.meta.get("model"), m.meta.get("provider")) if x)
            lines += [f"## Assistant ({who})" if who else "## Assistant", ""]
        if thought := thinking_quote(m.meta):
            lines += [thought, ""]
        lines += [m.content or "_(no text)_", ""]
        if m.status == "error":
            lines += [f"> Error: {' '.join((m.error or '').split())}", ""]
        elif m.status in STATUS_NOTES:
            lines += [f"> {STATUS_NOTES[m.status]}", ""]
    # Whoever renders the file sees what the page shows: no image fetched, no HTML, no unsafe link.
    return sanitize("\n".join(lines))


def thinking_quote(meta: dict) -> str:
    """A message's thinking, marked as such: a "Thinking" blockquote ahead of the answer (JSON exports
    carry it as `reasoning`, with signatures and base64 redacted bytes)."""
    blocks = meta.get("reasoning") or []
    if not blocks:
        return ""
    text = "".join(b.get("text") or "" for b in blocks).strip()
    if any(b.get("redacted") for b in blocks):
        text = (text + "\n\n" if text else "") + "_(redacted thinking)_"
    return "\n".join(["> **Thinking**", ">", *(f"> {line}".rstrip() for line in text.splitlines())])


def _iso(when) -> str | None:
    return when.isoformat() if when is not None else None

"""Durable generations: an answer is a job of its own, streaming into an append-only log in the
history database, that any viewer (page, HTTP, CLI) can attach to at any offset.

- `core`: `Generations`, the API every front end uses (start, stop, follow, read, get).
- `job`: one generation's threads (provider → Recorder → coalesced appends).
- `log`: the log itself (append, read from N, wake readers; LISTEN/NOTIFY on PostgreSQL).
- `recovery`: owner heartbeats, interrupted generations, retention.
- `answer`: the message a generation writes when it ends.
"""

from .core import Generations, exit_on_sigterm, save_on_sigterm
from .log import Chunk, GenerationInfo

__all__ = ["Chunk", "GenerationInfo", "Generations", "exit_on_sigterm", "save_on_sigterm"]

"""The Streamlit page's entry point (the lab's `streaming_app.py` calls `main`).

The page itself lives in `ui/`: `page` (one run), `sidebar`, `messages`, `live` (streaming, Stop).
"""

from __future__ import annotations

from .ui.format import metrics_line
from .ui.page import main

__all__ = ["main", "metrics_line"]

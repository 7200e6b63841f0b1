"""Text for the page: the metrics line under an answer, and labels that can't carry Markdown."""

from __future__ import annotations

import re

from ..chat import STATUS_NOTES
from ..pricing import cost, format_cost

_NOTE_ICONS = {
    "stopped": ":material/stop_circle:",
    "incomplete": ":material/warning:",
    "interrupted": ":material/warning:",
}
CUT_NOTE = ":material/content_cut: Cut at the max-tokens limit: Continue asks the model to go on."

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def plain(text: str) -> str:
    """Escape Markdown: Streamlit renders labels (buttons, dialogs) as Markdown, even images in them."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def metrics_line(m: dict, provider: str = "", model: str = "", live: bool = False) -> str:
    """'first token 210 ms · 38.5 tokens/s · 41 in / 60 out · ≈ $0.00031 · model (provider)'."""
    parts = []
    if m.get("ttfr_ms") is not None:  # a model that thought first: its first thought, then its first token
        parts.append(f"first thought {m['ttfr_ms']} ms")
    if m.get("ttft_ms") is not None:
        parts.append(f"first token {m['ttft_ms']} ms")
    if m.get("tokens_per_s"):
        parts.append(f"{m['tokens_per_s']:.1f} tokens/s")
    out = m.get("output_tokens") or 0
    if m.get("input_tokens") is not None:
        parts.append(f"{m['input_tokens']} in / {out} out")
    elif out:
        parts.append(f"{out} out")
    usd = cost(provider, model, m.get("input_tokens"), out) if (m.get("input_tokens") or out) else None
    if usd is not None:
        # Bedrock reports input tokens at the end; until then the estimate covers the output so far.
        parts.append(f"≈ {format_cost(usd)}" + (" so far" if live and m.get("input_tokens") is None else ""))
    if model or provider:
        parts.append(f"{model} ({provider})" if model and provider else model or provider)
    return ("streaming · " if live else "") + " · ".join(parts)


def waiting_line(seconds: float, provider: str = "", model: str = "") -> str:
    who = f" · {model} ({provider})" if model else ""
    return f"waiting for the first token… {seconds:.1f} s{who}"


def status_note(status: str) -> str:
    """The caption under a stopped or cut-short answer ('' for the others)."""
    note = STATUS_NOTES.get(status, "")
    return f"{_NOTE_ICONS[status]} {note}" if note else ""

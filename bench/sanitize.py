"""Benchmark 5: the sanitiser, the regex one before issue 10 and the CommonMark parser now, side by side.

    .venv/bin/python bench/sanitize.py     # about 10 seconds

*before* is `render.sanitize` at git revision `--before` (default b2e1368, read with `git show`), *after* is
this tree's `sanitize`. Both get the same Markdown (`common.bench_text`: prose, headings, lists, code):
- one call on the first 0.5, 2 (the largest tail a redraw re-sends), 8, 32 and 128 KB: median ms, and µs per
  KB of the fastest call (the same at every size = linear in the text; the fastest is the least disturbed by
  other work on the machine);
- a whole answer streamed through `LiveMarkdown` with a redraw on every piece (the worst case; the page
  redraws at most every 50 ms): time per answer with no sanitiser, the old one and the new one.
The machine's other work shows up in every number; the runs alternate so both sides see the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

from common import ROOT, bench_text, fmt, table, write_result
from response_streaming import render
from response_streaming.providers.replay import split_tokens
from response_streaming.sanitize import sanitize

SIZES_KB = (0.5, 2, 8, 32, 128)


def before_sanitize(revision: str):
    """The regex sanitiser as it was: render.py at `revision`, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/response_streaming/render.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("render_before")
    exec(compile(source, f"{revision}:render.py", "exec"), module.__dict__)
    return module.sanitize


def timed(fn, text: str, runs: int) -> float:
    """Median seconds of `runs` calls."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Null:
    """A Streamlit container that draws nothing: only the renderer's own work is timed."""

    def container(self):
        return self

    def empty(self):
        return self

    def markdown(self, text):
        pass

    def caption(self, text):
        pass


def streamed(fn, text: str) -> float:
    render.sanitize = fn  # LiveMarkdown calls the module's `sanitize`
    try:
        view = render.LiveMarkdown(_Null(), interval=0.0)
        start = time.perf_counter()
        for piece in split_tokens(text):
            view.update(piece)
        view.finish()
        return time.perf_counter() - start
    finally:
        render.sanitize = sanitize


def main(argv=None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES_KB)), help="text sizes in KB, comma-separated")
    ap.add_argument("--runs", type=int, default=15, help="calls per size and side (median)")
    ap.add_argument("--answers", type=int, default=5, help="streamed answers per side (median)")
    ap.add_argument("--answer-kb", type=float, default=16, help="size of the streamed answer")
    ap.add_argument("--before", default="b2e1368", help="git revision of the regex sanitiser")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sanitize.md")
    args = ap.parse_args(argv)
    sides = {"before": before_sanitize(args.before), "after": sanitize}
    text = bench_text(400)
    calls, rows = {}, []
    for kb in (float(x) for x in args.sizes.split(",")):
        sample = text[: int(kb * 1024)]
        for fn in sides.values():
            fn(sample)  # warm up (the parser builds its tables on the first call)
        got: dict[str, list[float]] = {name: [] for name in sides}
        for run in range(args.runs):
            for name in sides if run % 2 == 0 else list(sides)[::-1]:
                got[name].append(timed(sides[name], sample, 1))
        calls[kb] = {f"{name} {stat.__name__}": stat(v) for name, v in got.items() for stat in (statistics.median, min)}
        b, a = calls[kb]["before median"], calls[kb]["after median"]
        bmin, amin = calls[kb]["before min"], calls[kb]["after min"]
        rows.append(
            [
                fmt(kb, 1),
                fmt(b * 1000, 2),
                fmt(a * 1000, 2),
                fmt(a / b, 1) + "×",
                fmt(bmin * 1e6 / kb),
                fmt(amin * 1e6 / kb),
            ]
        )
    answer = text[: int(args.answer_kb * 1024)]
    every = {"none": lambda t: t, **sides}
    runs = {name: [] for name in every}
    for run in range(args.answers):
        for name in every if run % 2 == 0 else list(every)[::-1]:
            runs[name].append(streamed(every[name], answer))
    per_answer = {name: statistics.median(v) for name, v in runs.items()}
    pieces = len(split_tokens(answer))
    body = (
        f"One call (median of {args.runs}):\n\n"
        + table(
            ["KB", "before ms", "after ms", "after / before", "before µs/KB (fastest)", "after µs/KB (fastest)"], rows
        )
        + f"\n\nA {fmt(args.answer_kb)} KB answer streamed through `LiveMarkdown`, {pieces:,} pieces, a redraw on "
        f"every piece (median of {args.answers}):\n\n"
        + table(
            ["sanitiser", "seconds per answer", "ms per redraw"],
            [[name, fmt(t, 2), fmt(t * 1000 / pieces, 2)] for name, t in per_answer.items()],
        )
    )
    command = ".venv/bin/python bench/sanitize.py" + (" " + " ".join(argv) if argv else "")
    out = write_result(
        "sanitize", "5. The sanitiser: regex (before) vs CommonMark parser (after)", command, body, args.out
    )
    out.with_suffix(".json").write_text(
        json.dumps({"calls": {str(k): v for k, v in calls.items()}, "streamed": per_answer, "pieces": pieces}, indent=2)
    )
    return out


if __name__ == "__main__":
    main()

"""Benchmark 5: how fast a reload mid-answer brings the answer back (durable generations), in headless Chromium.

    .venv/bin/python bench/reattach.py      # 10 reloads of one answer streaming at 20 tokens/s

The app (`streaming_app.py`, replay provider, a long answer at `--rate` tokens/s) streams an answer; the
page is reloaded `--reloads` times while it runs, one second apart. For each reload, from navigation
start (`performance.now()` in a MutationObserver installed before Streamlit's code):
- first text = the re-attached answer's first text in the DOM (everything so far arrives at once);
- live again = the next change of that text after it (the answer growing again).
For comparison, the same page's load time with no answer streaming (the same conversation afterwards).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, chromium, fmt, start_streamlit, stop_process, table, write_result

OBSERVER = r"""
window.__ra = {first: null, live: null, n: 0};
new MutationObserver(() => {
  const R = window.__ra;
  if (R.live !== null) return;
  const boxes = document.querySelectorAll(".st-key-answer");
  const text = boxes.length ? boxes[boxes.length - 1].textContent : "";
  if (!text.includes("word")) return;
  const now = performance.now();
  if (R.first === null) { R.first = now; R.n = text.length; }
  else if (text.length > R.n) R.live = now;
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--rate", type=float, default=20.0, help="tokens/s of the replayed answer")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reattach.md")
    args = ap.parse_args(argv)
    words = " ".join(f"word{i}" for i in range(int(args.rate * (args.reloads * 4 + 30))))  # outlasts the reloads
    work = Path(tempfile.mkdtemp(prefix="bench-reattach-"))
    env = {"RS_DATA_DIR": str(work / "data"), "RS_PROVIDER": "replay", "RS_REPLAY_RATE": f"{args.rate:g}",
           "RS_REPLAY_TEXT": words}  # fmt: skip
    proc, url = start_streamlit(ROOT / "streaming_app.py", env, work / "app.log")
    rows: list[dict] = []
    try:
        with chromium() as browser:
            context = browser.new_context()
            page = context.new_page()
            page.add_init_script(OBSERVER)
            page.goto(url)
            page.locator(".st-key-input textarea").fill("Count for me")
            page.get_by_role("button", name="Go", exact=True).click()
            page.wait_for_function("window.__ra.live !== null", timeout=60_000)
            for _ in range(args.reloads):
                time.sleep(1.0)
                page.reload()
                page.wait_for_function("window.__ra.live !== null", timeout=60_000)
                ra = page.evaluate("window.__ra")
                rows.append({"first_ms": ra["first"], "live_ms": ra["live"]})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            page.locator(".st-key-stop").get_by_role("button", name="Stop").click()
            page.locator(".st-key-actions").wait_for(timeout=60_000)
            idle = []
            for _ in range(3):  # the same conversation with nothing streaming: the page's plain load
                page.reload()
                page.wait_for_function("window.__ra.first !== null", timeout=60_000)
                idle.append(page.evaluate("window.__ra.first"))
            context.close()
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"reloads": rows, "idle_load_ms": idle}, indent=1))
    firsts, lives = [r["first_ms"] for r in rows], [r["live_ms"] for r in rows]
    body = table(
        ["", "reloads", "median ms", "min ms", "max ms"],
        [
            ["reload → first re-attached text", str(len(rows)), fmt(statistics.median(firsts)), fmt(min(firsts)),
             fmt(max(firsts))],
            ["reload → growing again", str(len(rows)), fmt(statistics.median(lives)), fmt(min(lives)), fmt(max(lives))],
            ["reload of the same page, nothing streaming → answer text", str(len(idle)),
             fmt(statistics.median(idle)), fmt(min(idle)), fmt(max(idle))],
        ],
    )  # fmt: skip
    body += "\n\nTimes from navigation start; target for the first: ≤ 1,000 ms (median)."
    command = "python bench/reattach.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return write_result("reattach", "Re-attach after a reload mid-answer", command.strip(), body, args.out)


if __name__ == "__main__":
    main()

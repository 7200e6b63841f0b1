"""Benchmark 4: long conversations in the browser, the page before and after issue 14, side by side in one run.

    .venv/bin/python bench/long_chat.py     # 10, 100 and 400 messages, 3 runs each (~4 min)

Two Streamlit servers of the app (`streaming_app.py`, replay provider: a 32-word answer at 200 tokens/s):
*before* runs git revision `--before` (default b2e1368, the page before the change; `git archive` into a
scratch directory), *after* runs this tree. Each has its own history database, seeded by its own code with
one conversation per size and run: N messages of about 300 words, with bold, inline code, a code block
and links. For each size, the two versions alternate, each run in a fresh browser page:
- page load = navigation start → the last message's text in the DOM;
- click → first token = the click on Go → the answer's first word in the DOM;
- click → complete = the click → the whole answer in the DOM; streaming phase = complete − first token;
- websocket bytes per click = what the browser received from the click until the page settled again (the
  answer finished and drawn with its actions, Go enabled) (DevTools `Network.webSocketFrameReceived`);
- browser main thread = DevTools `Performance.getMetrics` TaskDuration over the same span.
Times come from a MutationObserver and a click listener installed before Streamlit's own code
(`performance.now()`), so polling from here adds nothing to them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, chromium, fmt, median, start_streamlit, stop_process, table, visible, write_result

SIZES = (10, 100, 400)
ANSWER = (
    "Xylophone players know that **timing** matters more than volume, so they count every beat, "
    "listen to the room, and keep their mallets loose until the very last quokka"
)
_VOCAB = ["river", "stone", "lantern", "orchard", "copper", "signal", "meadow", "harbor", "violet", "engine", "quiet"]

OBSERVER = r"""
window.__lc = {marker: null, loadAt: null, clickAt: null, firstAt: null, fullAt: null, expected: 0};
const visible = s => s.replace(/[\s*_`#>~\\|\u258c-]+/g, "");
document.addEventListener("click", e => {
  const b = e.target.closest && e.target.closest("button");
  if (b && b.innerText.trim() === "Go" && window.__lc.clickAt === null) window.__lc.clickAt = performance.now();
}, true);
new MutationObserver(records => {
  const L = window.__lc;
  const now = performance.now();
  if (L.loadAt === null && L.marker) {
    for (const r of records) {
      const nodes = r.type === "characterData" ? [r.target] : r.addedNodes;
      for (const n of nodes) if (n.textContent && n.textContent.includes(L.marker)) { L.loadAt = now; break; }
      if (L.loadAt !== null) break;
    }
  }
  if (L.clickAt !== null && L.fullAt === null) {
    const boxes = document.querySelectorAll(".st-key-answer");
    const text = boxes.length ? boxes[boxes.length - 1].textContent : "";
    if (L.firstAt === null && text.includes("Xylophone")) L.firstAt = now;
    if (L.firstAt !== null && visible(text).length >= L.expected && text.includes("quokka")) L.fullAt = now;
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def message(i: int, role: str) -> str:
    """About 300 words of Markdown: prose with bold, inline code and links; answers add a code block."""
    words = [_VOCAB[(i * 11 + j * 7 + j * j) % len(_VOCAB)] for j in range(300)]
    for j in range(0, 300, 23):
        words[j] = f"**{words[j]}**"
    for j in range(11, 300, 37):
        words[j] = f"`{words[j]}()`"
    for j in range(17, 300, 61):
        words[j] = f"[{words[j]}](https://example.com/{i}/{j})"
    paragraphs = [" ".join(words[k : k + 60]) for k in range(0, 300, 60)]
    paragraphs[0] = f"Message {i}: " + paragraphs[0]
    if role == "assistant":
        paragraphs.insert(2, "```python\n" + "\n".join(f"step_{i}_{k} = {_VOCAB[k]}({k})" for k in range(4)) + "\n```")
    return "\n\n".join(paragraphs)


def seed(data_dir: str, sizes: list[int], runs: int) -> dict:
    """Fill a history database (with the Store on sys.path: this tree's or the old one's)."""
    from response_streaming.store import Store

    store = Store(f"sqlite:///{Path(data_dir) / 'history.sqlite3'}")
    out: dict[str, list] = {}
    for n in sizes:
        for run in range(runs):
            cid = store.create_conversation(f"{n} messages, run {run}")
            for i in range(n):
                role = "user" if i % 2 == 0 else "assistant"
                meta = {"provider": "replay", "model": "replay", "metrics": {"output_tokens": 300}} if i % 2 else None
                store.add_message(cid, role, message(i, role), meta=meta)
            out.setdefault(str(n), []).append(cid)
    return out


class Version:
    """One app version: its source tree, its seeded database, its Streamlit server."""

    def __init__(self, name: str, src: Path, work: Path, sizes: list[int], runs: int) -> None:
        self.name, self.src = name, src
        self.data = work / f"data-{name}"
        env = {**os.environ, "PYTHONPATH": str(src / "src")}
        sizes_arg = ",".join(map(str, sizes))
        args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--seed",
            str(self.data),
            "--sizes",
            sizes_arg,
            "--runs",
            str(runs),
        ]
        self.cids = json.loads(subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout)
        env = {
            "PYTHONPATH": str(src / "src"),
            "RS_DATA_DIR": str(self.data),
            "RS_PROVIDER": "replay",
            "RS_REPLAY_RATE": "200",
            "RS_REPLAY_TEXT": ANSWER,
        }
        self.proc, self.url = start_streamlit(src / "streaming_app.py", env, work / f"{name}.log")

    def stop(self) -> None:
        stop_process(self.proc)


def before_tree(rev: str, work: Path) -> Path:
    out = work / "before"
    out.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "src", "streaming_app.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def measure(browser, version: Version, size: int, cid: str, budget: float) -> dict:
    marker = f"Message {size - 1}:"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(
            OBSERVER.replace("marker: null", f"marker: {json.dumps(marker)}").replace(
                "expected: 0", f"expected: {len(visible(ANSWER))}"
            )
        )
        cdp = context.new_cdp_session(page)
        received = [0]

        def count(e) -> None:
            data = e["response"]["payloadData"]
            received[0] += len(base64.b64decode(data)) if e["response"]["opcode"] == 2 else len(data.encode())

        cdp.on("Network.webSocketFrameReceived", count)
        cdp.send("Network.enable")
        cdp.send("Performance.enable")
        page.goto(f"{version.url}/?c={cid}")
        go = page.get_by_role("button", name="Go", exact=True)
        page.wait_for_function("window.__lc.loadAt !== null", timeout=budget * 1000)
        page.wait_for_function(
            "b => b && !b.disabled", arg=go.element_handle(timeout=budget * 1000), timeout=budget * 1000
        )
        page.wait_for_timeout(500)  # the load's last messages
        page.locator(".st-key-input textarea").fill("One more question, please.")
        bytes0, task0 = received[0], _task(cdp)
        go.click()
        page.wait_for_function("window.__lc.fullAt !== null", timeout=budget * 1000)
        # Settled: the finished answer is drawn with its actions and Go is back on (the old page redraws
        # the whole conversation here), then no frame for 500 ms.
        page.locator(".st-key-actions").last.wait_for(timeout=budget * 1000)
        page.wait_for_function(
            "b => b && !b.disabled", arg=go.element_handle(timeout=budget * 1000), timeout=budget * 1000
        )
        last, seen = time.monotonic(), received[0]
        deadline = time.monotonic() + budget
        while time.monotonic() - last < 0.5 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
            if received[0] != seen:
                last, seen = time.monotonic(), received[0]
        lc = page.evaluate("window.__lc")
        return {
            "version": version.name,
            "size": size,
            "load_ms": lc["loadAt"],
            "first_ms": lc["firstAt"] - lc["clickAt"],
            "complete_ms": lc["fullAt"] - lc["clickAt"],
            "stream_ms": lc["fullAt"] - lc["firstAt"],
            "ws_bytes": received[0] - bytes0,
            "browser_task_s": _task(cdp) - task0,
        }
    finally:
        context.close()


def _task(cdp) -> float:
    return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")


def summarise(results: list[dict], sizes: list[int]) -> str:
    header = [
        "messages",
        "page",
        "runs",
        "page load ms",
        "click → first token ms",
        "click → complete ms",
        "streaming phase ms",
        "websocket KB per click",
        "browser main thread s per click",
    ]
    rows = []
    for size in sizes:
        for name in ("before", "after"):
            group = [r for r in results if r["size"] == size and r["version"] == name]
            if not group:
                continue
            times = [fmt(median(r[k] for r in group)) for k in ("load_ms", "first_ms", "complete_ms", "stream_ms")]
            kb = fmt(median(r["ws_bytes"] for r in group) / 1024, 1)
            task = fmt(median(r["browser_task_s"] for r in group), 2)
            rows.append([fmt(size), name, str(len(group)), *times, kb, task])
    lines = [
        table(header, rows),
        "",
        "Medians. Ratios at the largest size against the smallest (targets: first "
        "token ≤ 1.2×, page load ≤ 1.5×, streaming phase as fast):",
        "",
    ]
    small, large = min(sizes), max(sizes)
    for name in ("before", "after"):
        a = [r for r in results if r["version"] == name and r["size"] == small]
        b = [r for r in results if r["version"] == name and r["size"] == large]
        if a and b and small != large:
            ratio = {k: median(r[k] for r in b) / median(r[k] for r in a) for k in ("load_ms", "first_ms", "stream_ms")}
            lines.append(
                f"- {name}: page load ×{ratio['load_ms']:.2f}, click → first token ×{ratio['first_ms']:.2f}, "
                f"streaming phase ×{ratio['stream_ms']:.2f} ({large} vs {small} messages)"
            )
    return "\n".join(lines)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="messages per conversation, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", default="b2e1368", help="git revision of the page to compare with")
    ap.add_argument("--versions", default="before,after", help="which pages to run (before, after or both)")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds any one wait may take")
    ap.add_argument("--seed", help=argparse.SUPPRESS)  # internal: seed this data directory and print the ids
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "long_chat.md")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    if args.seed:
        print(json.dumps(seed(args.seed, sizes, args.runs)))
        return Path(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-long-chat-"))
    versions: list[Version] = []
    results: list[dict] = []
    try:
        wanted = args.versions.split(",")
        if "before" in wanted:
            versions.append(Version("before", before_tree(args.before, work), work, sizes, args.runs))
        if "after" in wanted:
            versions.append(Version("after", ROOT, work, sizes, args.runs))
        with chromium() as browser:
            for size in sizes:
                for run in range(args.runs):
                    # Alternate which version goes first, so neither always follows the other.
                    for v in versions if run % 2 == 0 else versions[::-1]:
                        r = measure(browser, v, size, v.cids[str(size)][run], args.budget)
                        results.append(r)
                        print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        for v in versions:
            v.stop()
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    command = "python bench/long_chat.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return write_result(
        "long_chat",
        f"Long conversations: the page before ({args.before}) and after issue 14",
        command.strip(),
        summarise(results, sizes),
        args.out,
    )


if __name__ == "__main__":
    main()

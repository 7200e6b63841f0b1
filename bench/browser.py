"""Benchmark 1: the answer in a real headless Chromium, ours against `st.write_stream` and the lab's
`StreamlitCallbackHandler`, served side by side in one run. Ours is the app's path (a durable
generation writing its log, the page following the log); `direct` is the path before the log (the
provider's stream read straight into the page), to measure what the log costs.

    .venv/bin/python bench/browser.py            # the full run: 100 and 1,000 tokens/s × 500, 2,000, 8,000 tokens

For every run: a fresh browser page opens one of the bench pages (bench/pages/), clicks Go
and watches the answer with a MutationObserver that stamps each change of its visible text with
`performance.timeOrigin + performance.now()`; the page stamps each token leaving the provider with
`time.time()` (one machine, one wall clock). From those:
- TTFT overhead = first text visible − first token emitted;
- drain lag = full answer visible − last token emitted;
- wire amplification = websocket bytes the browser received (DevTools `Network.webSocketFrameReceived`,
  payloads decoded) ÷ answer bytes;
- server CPU = user + system seconds of the Streamlit process during the run (/proc);
- browser main thread = DevTools `Performance.getMetrics` TaskDuration during the run.
A run that has not shown the whole answer `--budget` seconds after Go, or whose page failed (its
script raised), is reported as such with how much of the answer it showed; its server is restarted
(so a backlog cannot slow the next run), and longer answers at the same rate are not tried for that
page. The pages run with Streamlit's defaults unless `--st-option` says otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BENCH,
    RESULTS,
    bench_text,
    chromium,
    cpu_seconds,
    fmt,
    median,
    start_streamlit,
    stop_process,
    table,
    visible,
    write_result,
)
from response_streaming.providers.replay import split_tokens

PAGES = ("ours", "direct", "write_stream", "callback_handler")

# Runs in the page before Streamlit's own code. `visible` mirrors common.visible; the answer is every
# Markdown block inside the `answer` container except an expander's label (the callback handler's).
OBSERVER = r"""
window.__bench = {records: [], n: 0, t: 0};
const visible = s => s.replace(/[\s*_`#>~\\|\u258c-]+/g, "");
new MutationObserver(() => {
  const root = document.querySelector(".st-key-answer");
  if (!root) return;
  let text = "";
  for (const el of root.querySelectorAll('[data-testid="stMarkdownContainer"]')) {
    if (!el.closest("summary")) text += el.textContent;
  }
  const n = visible(text).length;
  if (n !== window.__bench.n) {
    const t = performance.timeOrigin + performance.now();
    window.__bench.records.push([t, n]);
    window.__bench.n = n;
    window.__bench.t = t;
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def frame_bytes(event: dict) -> int:
    """Bytes of one websocket frame's payload (binary frames arrive base64-encoded)."""
    payload = event["response"]["payloadData"]
    if event["response"]["opcode"] == 2:
        return len(base64.b64decode(payload))
    return len(payload.encode())


class Server:
    """One Streamlit server per bench page, restartable after a run that did not finish."""

    def __init__(self, name: str, out_dir: Path, options: tuple[str, ...] = ()) -> None:
        self.name, self.out_dir, self.options = name, out_dir, options
        self.proc, self.url = None, ""
        self.start()

    def start(self) -> None:
        self.proc, self.url = start_streamlit(
            BENCH / "pages" / f"{self.name}.py",
            {"BENCH_OUT": str(self.out_dir)},
            self.out_dir / f"{self.name}.log",
            self.options,
        )

    def restart(self) -> None:
        stop_process(self.proc)
        self.start()

    def stop(self) -> None:
        stop_process(self.proc)


def measure(browser, server: Server, tokens: int, rate: float, run_id: str, budget: float) -> dict:
    answer = "".join(split_tokens(bench_text())[:tokens])
    expected = len(visible(answer))
    marks_file = server.out_dir / f"{run_id}.json"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(OBSERVER)
        cdp = context.new_cdp_session(page)
        received = [0]
        cdp.on("Network.webSocketFrameReceived", lambda e: received.__setitem__(0, received[0] + frame_bytes(e)))
        cdp.send("Network.enable")
        cdp.send("Performance.enable")
        page.goto(f"{server.url}/?tokens={tokens}&rate={rate:g}&run={run_id}")
        go = page.get_by_role("button", name="Go")
        go.wait_for(timeout=60_000)
        page.wait_for_timeout(300)  # let the first script run's messages land before counting
        bytes0, cpu0, task0 = received[0], cpu_seconds(server.proc.pid), task_seconds(cdp)
        go.click()
        deadline = time.monotonic() + budget
        marks = None
        while time.monotonic() < deadline:
            n, last_change = page.evaluate("[window.__bench.n, window.__bench.t]")
            marks = json.loads(marks_file.read_text()) if marks_file.exists() else None
            # Done: the page has shown the whole answer; or the stream failed; or (a page that renders
            # the answer a little differently) its text has stopped changing for 2 s after the server.
            if marks and (n >= expected or marks["status"] != "complete" or time.time() * 1000 - last_change > 2000):
                break
            page.wait_for_timeout(50)
        page.wait_for_timeout(200)  # the script-finished message
        records = page.evaluate("window.__bench.records")
        result = {
            "page": server.name,
            "tokens": tokens,
            "rate": rate,
            "run": run_id,
            "marks": marks,
            "expected_visible": expected,
            "shown_visible": records[-1][1] if records else 0,
            "ws_bytes": received[0] - bytes0,
            "answer_bytes": len(answer.encode()),
            "server_cpu_s": cpu_seconds(server.proc.pid) - cpu0,
            "browser_task_s": task_seconds(cdp) - task0,
        }
    finally:
        context.close()
    if marks is None:
        result["outcome"] = f"did not finish in {budget:g} s"
    elif marks["status"] != "complete":
        result["outcome"] = f"failed: {marks.get('error') or marks['status']}"
    else:
        result["outcome"] = "finished"
        first = next(t for t, n in records if n > 0) / 1000
        full = next((t for t, n in records if n >= expected), records[-1][0]) / 1000
        result.update(
            ttft_overhead_ms=(first - marks["first_emit"]) * 1000,
            drain_lag_ms=(full - marks["last_emit"]) * 1000,
            wire_amplification=result["ws_bytes"] / result["answer_bytes"],
        )
    return result


def task_seconds(cdp) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def run_all(rates, lengths, pages, runs: int, peer_runs: int, budget: float, work: Path, options=()) -> list[dict]:
    results: list[dict] = []
    servers = {}
    try:
        for name in pages:
            servers[name] = Server(name, work, options)
        with chromium() as browser:
            for rate in rates:
                gave_up: dict[str, int] = {}  # page -> the length it did not finish at this rate
                for tokens in lengths:
                    wanted = {p: runs if p in ("ours", "direct") else peer_runs for p in pages}
                    for rep in range(max(wanted.values())):
                        # Rotate the order so no page always runs right after a heavy one.
                        order = pages[rep % len(pages) :] + pages[: rep % len(pages)]
                        for name in order:
                            if rep >= wanted[name] or name in gave_up:
                                continue
                            run_id = f"{name}-{rate:g}-{tokens}-{rep}"
                            r = measure(browser, servers[name], tokens, rate, run_id, budget)
                            results.append(r)
                            print(json.dumps(r), file=sys.stderr, flush=True)
                            if r["outcome"] != "finished":
                                gave_up[name] = tokens
                                servers[name].restart()
                    for name, n in gave_up.items():
                        if n < tokens:
                            results.append({"page": name, "tokens": tokens, "rate": rate, "skipped_after": n})
    finally:
        for s in servers.values():
            s.stop()
    return results


def summarise(results: list[dict], budget: float) -> str:
    header = [
        "rate (tokens/s)",
        "tokens",
        "page",
        "runs finished",
        "TTFT overhead ms",
        "drain lag ms",
        "wire bytes ÷ answer bytes",
        "server CPU s",
        "server CPU ms / 1k tokens",
        "browser main thread s",
    ]
    rows = []
    keys = sorted({(r["rate"], r["tokens"], r["page"]) for r in results}, key=lambda k: (k[0], k[1], PAGES.index(k[2])))
    for rate, tokens, page in keys:
        group = [r for r in results if (r["rate"], r["tokens"], r["page"]) == (rate, tokens, page)]
        if "skipped_after" in group[0]:
            rows.append(
                [fmt(rate), fmt(tokens), page, f"not tried (did not finish {group[0]['skipped_after']:,})"] + ["–"] * 6
            )
            continue
        done = [r for r in group if r["outcome"] == "finished"]
        if not done:
            shown = max(r["shown_visible"] / r["expected_visible"] for r in group)
            rows.append(
                [
                    fmt(rate),
                    fmt(tokens),
                    page,
                    f"0/{len(group)}: {group[0]['outcome']} ({shown:.0%} shown)",
                    "–",
                    "–",
                    fmt(median(r["ws_bytes"] / r["answer_bytes"] for r in group), 1) + " (so far)",
                    "> " + fmt(median(r["server_cpu_s"] for r in group), 1),
                    "–",
                    "> " + fmt(median(r["browser_task_s"] for r in group), 1),
                ]
            )
            continue
        cpu = median(r["server_cpu_s"] for r in done)
        rows.append(
            [
                fmt(rate),
                fmt(tokens),
                page,
                f"{len(done)}/{len(group)}",
                fmt(median(r["ttft_overhead_ms"] for r in done)),
                fmt(median(r["drain_lag_ms"] for r in done)),
                fmt(median(r["wire_amplification"] for r in done), 1),
                fmt(cpu, 2),
                fmt(cpu / tokens * 1e6, 0),
                fmt(median(r["browser_task_s"] for r in done), 2),
            ]
        )
    mismatched = [r for r in results if r.get("outcome") == "finished" and r["shown_visible"] != r["expected_visible"]]
    note = ""
    if mismatched:
        note = "\n\nVisible text differed from the answer (characters shown vs expected): " + ", ".join(
            f"{r['run']} {r['shown_visible']} vs {r['expected_visible']}" for r in mismatched
        )
    return table(header, rows) + "\n\nMedians over the finished runs." + note


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="100,1000", help="tokens/s, comma-separated")
    ap.add_argument("--tokens", default="500,2000,8000", help="answer lengths, comma-separated")
    ap.add_argument("--pages", default=",".join(PAGES))
    ap.add_argument("--runs", type=int, default=3, help="runs per setting for ours")
    ap.add_argument("--peer-runs", type=int, default=3, help="runs per setting for the two peers")
    ap.add_argument(
        "--budget", type=float, default=120.0, help="seconds a run may take before it counts as not finished"
    )
    ap.add_argument(
        "--st-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Streamlit config option for all three servers, e.g. runner.postScriptGC=false",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "browser.md")
    args = ap.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]
    lengths = [int(x) for x in args.tokens.split(",")]
    pages = tuple(p for p in args.pages.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    try:
        results = run_all(rates, lengths, pages, args.runs, args.peer_runs, args.budget, work, tuple(args.st_option))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    command = "python bench/browser.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return write_result(
        "browser",
        "Browser: ours vs st.write_stream vs StreamlitCallbackHandler",
        command.strip(),
        summarise(results, args.budget),
        args.out,
    )


if __name__ == "__main__":
    main()

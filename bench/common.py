"""What every benchmark shares: free ports, servers started and always stopped, a headless Chromium,
process CPU and memory from /proc, medians, the bench text, and writing a result table.

Only the standard library at import time: the bench pages import this module inside Streamlit.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
# Quiet on a closed network (see shared/DESIGN.md); Playwright adds --headless and a fresh profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def start_process(args: list[str], env: dict[str, str], health_url: str, log: Path) -> subprocess.Popen:
    """Start a server (its output goes to `log`) and wait until `health_url` answers."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}  # the developer's settings stay out
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(health_url, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def start_streamlit(
    script: Path, env: dict[str, str], log: Path, options: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """`streamlit run script` on a free loopback port; no file watcher, so idle CPU stays near zero.

    `options` are more Streamlit config options as "name=value" (e.g. "runner.postScriptGC=false").
    """
    port = free_port()
    args = [
        str(BIN / "streamlit"),
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
    ]
    for option in options:
        name, value = option.split("=", 1)
        args += [f"--{name}", value]
    url = f"http://127.0.0.1:{port}"
    return start_process(args, env, f"{url}/_stcore/health", log), url


@contextlib.contextmanager
def chromium():
    """A headless Debian Chromium driven by Playwright; closed however the block ends."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium is missing: run `bash scripts/system-deps.sh` (apt-get install chromium).")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# ---------------------------------------------------------------- numbers and tables


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def machine() -> str:
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu.group(1).strip() if cpu else '?'}), "
        f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB RAM, Python {platform.python_version()}, "
        f"load average at the start {load[0]:.2f}"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, title: str, command: str, body: str, out: Path | None = None) -> Path:
    """Write a result as Markdown (title, date, machine, command, tables), print it, return its path."""
    out = out or RESULTS / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = f"## {title}\n\n{when} · {machine()}\n\n`{command}`\n\n{body.strip()}\n"
    out.write_text(text)
    print(text, flush=True)
    return out


# ---------------------------------------------------------------- the replayed answer

_STORY = (
    "the lighthouse keeper wrote down every ship that passed while the two cats watched "
    "the gulls argue over a sardine and the tide pulled the sand into long "
    "ribbons along the quiet shore"
)
_WORDS = _STORY.split()


def bench_text(paragraphs: int = 160) -> str:
    """A fixed Markdown answer of about 8,600 word tokens: prose, headings, lists and code blocks.

    Deterministic (no randomness) so every page and every run streams the same bytes. It avoids
    Markdown that renders to different visible text (links, ordered lists, `:emoji:`, `$math$`).
    """
    parts = []
    for i in range(paragraphs):
        if i % 12 == 11:  # not first: the answer's first token must be visible text on its own
            parts.append(f"## Part {i // 12 + 1}")
        words = [_WORDS[(i * 7 + j * j + j) % len(_WORDS)] for j in range(30 + (i * 13) % 25)]
        words[3] = f"**{words[3]}**"
        words[9] = f"`{words[9]}`"
        words[14] = f"_{words[14]}_"
        parts.append(f"Paragraph {i + 1}: " + " ".join(words) + ".")
        if i % 5 == 2:
            parts.append("\n".join(f"- item {i}.{k}: {' '.join(words[k : k + 6])}" for k in range(4)))
        if i % 9 == 4:
            parts.append(
                "```\n" + "\n".join(f"step_{i}_{k} = watch(tide={k}, gulls={i % 7})" for k in range(5)) + "\n```"
            )
    return "\n\n".join(parts)


def visible(text: str) -> str:
    """What a reader sees, for comparing a page with the answer: no whitespace, Markdown marks or cursor."""
    return re.sub(r"[\s*_`#>~\\|\u258c-]+", "", text)

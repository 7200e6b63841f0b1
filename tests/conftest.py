"""Shared fixtures: settings for the real embedded model, loopback servers, a real headless Chromium."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from response_streaming.config import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def streamlit_command(port: int, *extra: str) -> list[str]:
    """`streamlit run streaming_app.py` on 127.0.0.1:`port`, quiet, with any extra options (run it from ROOT)."""
    return [
        str(BIN / "streamlit"), "run", "streaming_app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false", *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch, tmp_path):
    """Tests never see the developer's RS_* variables, and each starts with fresh cached settings.
    The history (and generation log) of an app a test builds goes to the test's own directory."""
    for key in list(os.environ):
        if key.startswith("RS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RS_DATA_DIR", str(tmp_path / "rs-data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def local_settings() -> Settings:
    # A small context keeps the KV cache small; the default cache_dir holds the model `make` prepared.
    return Settings(provider="local", n_ctx=2048, max_tokens=48, temperature=0.0)


@pytest.fixture(scope="session")
def local_provider(local_settings):
    from response_streaming.providers.local import LocalProvider

    return LocalProvider(local_settings)


@pytest.fixture()
def api_server():
    """Run an ASGI app (e.g. `server.create_app(provider=...)`) on granian, the server `serve` uses,
    in a background thread on a free loopback port; it speaks HTTP/1.1 and HTTP/2 (h2c with prior
    knowledge) on the same port. Returns its base URL. Stopped (and joined) when the test ends."""
    import asyncio
    import threading

    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    servers = []

    def start(app) -> str:
        port = free_port()
        loop = asyncio.new_event_loop()
        server = Server(
            app,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            http=HTTPModes.auto,
            websockets=False,
            log_enabled=False,
        )

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve())

        thread = threading.Thread(target=run, name=f"granian-{port}", daemon=True)
        thread.start()
        servers.append((server, loop, thread))
        wait_http(f"http://127.0.0.1:{port}/health", timeout=30)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, loop, thread in servers:
        loop.call_soon_threadsafe(server.stop)
        thread.join(15)


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def protocol(request) -> str:
    """Run a test over both protocols: HTTP/1.1, and HTTP/2 with prior knowledge (what the AWS SDK for
    JavaScript speaks to an http:// endpoint)."""
    return request.param


def http_client(protocol: str, **kw):
    """An httpx client speaking `protocol` only (HTTP/2: h2c with prior knowledge, a real h2 client)."""
    import httpx

    h2 = protocol == "HTTP/2"
    return httpx.Client(http1=not h2, http2=h2, **{"timeout": 60, **kw})


@pytest.fixture()
def streamlit_server(tmp_path):
    """Start `streamlit run streaming_app.py` on a free loopback port with the given RS_* settings."""
    procs = []

    def start(**env_settings) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
        env.update(
            {"RS_DATA_DIR": str(tmp_path / "data")}, **{f"RS_{k.upper()}": str(v) for k, v in env_settings.items()}
        )
        proc = subprocess.Popen(
            streamlit_command(port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc=proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# Module scope, not session: Playwright's sync API keeps an event loop running in the main thread while
# it is started, so `asyncio.run` (LangChain's async suites, the benchmarks' own Playwright) would fail
# in any module that runs after the first browser test.
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `bash scripts/system-deps.sh` (apt-get install chromium).")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    yield pg
    context.close()


LLAMA_SERVER_KEY = "test-key-123"


@pytest.fixture(scope="session")
def llama_server(local_settings, tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server on the bundled model (a server we did not write)."""
    from response_streaming.providers.local import resolve_model_path

    gguf = resolve_model_path(local_settings)
    port = free_port()
    # Its log goes to a file: llama.cpp is chatty, and a full pipe nobody reads would block the server.
    # The bundled Gemma is a *base* model: under the GGUF's own chat template it ends its turn at once,
    # while a plain "USER: ... ASSISTANT:" transcript (llama.cpp's "vicuna" format) makes it write.
    log = open(tmp_path_factory.mktemp("llama-server") / "server.log", "w")  # noqa: SIM115  (closed by the fixture)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--api_key",
            LLAMA_SERVER_KEY,
            "--verbose",
            "false",
            "--chat_format",
            "vicuna",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # /docs needs no key; the server answers only once the model is loaded.
        wait_http(f"http://127.0.0.1:{port}/docs", timeout=180, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on a free loopback port; yields a function making fresh databases."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is missing: run `bash scripts/system-deps.sh` (apt-get install postgresql).")
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="rs-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the `postgres` system user.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("Running as root, PostgreSQL needs the `postgres` system user (apt-get install postgresql).")
        shutil.chown(root, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    _run(as_owner + [str(bindir / "initdb"), "-D", str(data), "-U", "rs", "--auth=trust", "-E", "UTF8", "--no-sync"])
    _run(
        as_owner
        + [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ]
    )

    def database() -> str:
        name = f"rs_{uuid.uuid4().hex[:12]}"
        _run(as_owner + [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "rs", name])
        return f"postgresql+psycopg://rs@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        subprocess.run(
            as_owner + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)

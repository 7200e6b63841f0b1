"""The wheel as a new user gets it: built from this checkout, installed with every extra into a fresh
virtual environment outside the checkout, and run from a directory with no project files.

pip's cache (and the index) supply the dependencies, so llama.cpp is not rebuilt; the bundled model
file `make model` assembled in ~/.cache/response-streaming is found by the installed copy too.
Select with `-m install`, skip with `-m "not install"`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ROOT, free_port, wait_http
from response_streaming import __version__
from response_streaming.providers.replay import STORY

pytestmark = pytest.mark.install


def sh(*cmd, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools leaves build/ in the tree it builds, and a stale build/lib would
    # put files into the wheel that the checkout no longer has.
    source = tmp_path_factory.mktemp("source") / "tree"
    junk = shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "data"
    )
    shutil.copytree(ROOT, source, symlinks=True, ignore=junk)
    dist = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source)
    [built] = dist.glob("response_streaming-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(venv bin dir, environment, empty working directory). The venv (about 1 GB) is removed afterwards."""
    base = tmp_path_factory.mktemp("fresh")
    venv, empty = base / "venv", base / "empty"
    empty.mkdir()
    # Nothing of the checkout may leak in: no PYTHONPATH (pip would take the checkout's egg-info for
    # an installed copy), no venv of ours, no RS_* settings.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("RS_")
    }
    env |= {"PATH": f"{venv / 'bin'}:{env.get('PATH', '')}", "RS_DATA_DIR": str(base / "data"), "RS_N_CTX": "2048"}
    sh(sys.executable, "-m", "venv", venv, env=env, cwd=empty)
    sh(venv / "bin" / "python", "-m", "pip", "install", "-q", f"{wheel}[all]", env=env, cwd=empty)
    yield venv / "bin", env, empty
    shutil.rmtree(venv, ignore_errors=True)


def test_the_wheel_carries_its_metadata_license_and_runtime_files(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"response_streaming-{__version__}.dist-info/METADATA").decode()
    assert {
        "response_streaming/app/streaming_app.py",
        "response_streaming/app/.streamlit/config.toml",
        f"response_streaming-{__version__}.dist-info/licenses/LICENSE",
    } <= names
    assert "Summary: Stream a language model" in meta and "License-Expression: MIT" in meta
    assert "Project-URL: Homepage" in meta and "Requires-Dist: markdown-it-py" in meta
    for extra in ("local", "app", "bedrock", "openai", "server", "postgres", "all"):
        assert f"Provides-Extra: {extra}" in meta


def test_the_installed_copy_is_the_one_that_runs(installed):
    bin_dir, env, empty = installed
    where = sh(
        bin_dir / "python", "-c", "import response_streaming; print(response_streaming.__file__)", env=env, cwd=empty
    )
    assert Path(where.stdout.strip()).is_relative_to(bin_dir.parent)
    assert list(empty.iterdir()) == []


def test_version(installed):
    bin_dir, env, empty = installed
    assert (
        sh(bin_dir / "response-streaming", "--version", env=env, cwd=empty).stdout.strip()
        == f"response-streaming {__version__}"
    )


def test_ask_on_the_replay_provider(installed):
    bin_dir, env, empty = installed
    out = sh(bin_dir / "response-streaming", "ask", "hi", "--provider", "replay", env=env, cwd=empty)
    assert out.stdout.strip() == STORY


def test_ask_on_the_embedded_model(installed):
    bin_dir, env, empty = installed
    out = sh(
        bin_dir / "response-streaming",
        "ask",
        "The capital of France is",
        "--max-tokens",
        "8",
        "--stats",
        env=env,
        cwd=empty,
        timeout=300,
    )
    assert out.stdout.strip() and "[complete]" in out.stderr and "tokens/s" in out.stderr


@pytest.mark.browser
def test_app_serves_the_chat_page_to_chromium(installed, page):
    bin_dir, env, empty = installed
    port = free_port()
    proc = subprocess.Popen(
        [bin_dir / "response-streaming", "app", "--port", str(port)],
        cwd=empty,
        env=env | {"RS_PROVIDER": "replay"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc=proc, timeout=120)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("heading", name="Response Streaming").wait_for(timeout=60_000)
        assert page.title() == "Response Streaming"
        page.locator(".st-key-input textarea").fill("Tell me a story")
        page.get_by_role("button", name="Go", exact=True).click()
        page.locator(".st-key-answer").get_by_text("they agreed that was better", exact=False).wait_for(timeout=60_000)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
    # The packaged settings applied with no project files around: loopback only, no usage statistics.
    assert f"URL: http://127.0.0.1:{port}" in log and "Network URL" not in log, log
    outside = [
        u
        for u in requests
        if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).hostname != "127.0.0.1"
    ]
    assert requests and outside == []

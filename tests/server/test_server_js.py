"""Real clients from another ecosystem (issue 13): the AWS SDK for JavaScript v3 with its default (HTTP/2)
handler and the `openai` npm package, unmodified scripts in tests/js/, against the server on a loopback
port; each must receive exactly the answer, and errors must come through as the SDKs' own classes.

The packages are pinned in tests/js/package-lock.json and installed once, with the `npm` already on
the machine (`npm ci`), into a cache folder named after the lock file's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from response_streaming.config import Settings
from response_streaming.errors import Throttled
from response_streaming.providers.replay import ReplayProvider, split_tokens
from response_streaming.server import create_app
from tests.server.test_server_openai import TEXT, Tap

JS = Path(__file__).resolve().parents[1] / "js"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "response-streaming" / "js"
AKID, SECRET = "AKIDJSCLIENT", "js-client-secret"
KEYED = Settings(provider="replay", api_keys="sk-js-client", aws_access_keys=f"{AKID}:{SECRET}")


@pytest.fixture(scope="session")
def js_clients() -> Path:
    """A folder holding the scripts and their pinned node_modules (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail(
            "Node.js is missing: run `bash scripts/system-deps.sh` (it installs Debian's nodejs where "
            "`node` is absent; npm comes with the machine's Node or Debian's nodejs)."
        )
    lock = (JS / "package-lock.json").read_bytes()
    folder = CACHE / hashlib.sha256(lock + (JS / "package.json").read_bytes()).hexdigest()[:16]
    if not (folder / "node_modules" / ".package-lock.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(JS / name, folder / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=600,
            capture_output=True,
        )
    for script in JS.glob("*.mjs"):  # scripts resolve packages next to themselves, so they run from there
        shutil.copy(script, folder / script.name)
    return folder


def run_js(folder: Path, script: str, *args: str, env: dict[str, str]) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENAI_", "RS_"))}
    out = subprocess.run(
        ["node", script, *args], cwd=folder, env={**base, **env}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def bedrock_env(base: str) -> dict[str, str]:
    return {"ENDPOINT": base, "AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}


def openai_env(base: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": f"{base}/v1", "OPENAI_API_KEY": "sk-js-client"}


@pytest.mark.parametrize("op", ["converse", "converse-stream", "invoke", "invoke-with-response-stream"])
def test_aws_sdk_js_default_client_gets_exactly_the_answer(js_clients, api_server, op):
    tap = Tap(ReplayProvider(text=TEXT))
    base = api_server(create_app(KEYED, tap))
    got = run_js(js_clients, "bedrock.mjs", op, env=bedrock_env(base))
    assert got == {"text": TEXT} and len(tap.runs) == 1


def test_openai_js_streams_exactly_the_answer(js_clients, api_server):
    base = api_server(create_app(KEYED, ReplayProvider(text=TEXT)))
    assert run_js(js_clients, "openai.mjs", env=openai_env(base)) == {"text": TEXT}


def test_js_clients_without_the_key_are_refused(js_clients, api_server):
    tap = Tap(ReplayProvider(text=TEXT))
    base = api_server(create_app(KEYED, tap))
    got = run_js(js_clients, "bedrock.mjs", "converse-stream", env={**bedrock_env(base), "AWS_SECRET_ACCESS_KEY": "no"})
    assert got["error"]["name"] == "UnrecognizedClientException" and got["error"]["status"] == 401
    got = run_js(js_clients, "openai.mjs", env={**openai_env(base), "OPENAI_API_KEY": "wrong"})
    assert got["error"]["name"] == "AuthenticationError" and got["error"]["status"] == 401
    assert tap.runs == []


def test_errors_arrive_as_the_sdks_own_classes(js_clients, api_server):
    busy = ReplayProvider(text=TEXT, fail_after=0, error=Throttled("The local model is busy; try again."))
    base = api_server(create_app(KEYED, busy))
    got = run_js(js_clients, "bedrock.mjs", "converse-stream", env=bedrock_env(base))
    assert got["error"]["name"] == "ThrottlingException" and got["error"]["at"] == "request"
    assert got["error"]["status"] == 429 and "busy" in got["error"]["message"]
    got = run_js(js_clients, "openai.mjs", env=openai_env(base))
    assert got["error"]["name"] == "RateLimitError" and got["error"]["apiError"] and got["error"]["status"] == 429

    broken = api_server(create_app(KEYED, ReplayProvider(text=TEXT, fail_after=3)))
    first3 = "".join(split_tokens(TEXT)[:3])
    for op in ("converse-stream", "invoke-with-response-stream"):
        got = run_js(js_clients, "bedrock.mjs", op, env=bedrock_env(broken))
        assert got["text"] == first3 and got["error"]["at"] == "stream"
        assert got["error"]["name"] == "ModelStreamErrorException" and "injected fault" in got["error"]["message"]
    got = run_js(js_clients, "openai.mjs", env=openai_env(broken))
    assert got["text"] == first3 and got["error"]["at"] == "stream"
    assert got["error"]["apiError"] and "injected fault" in got["error"]["message"]


def test_aws_sdk_js_with_a_bedrock_api_key(js_clients, api_server):
    """The JavaScript SDK sends AWS_BEARER_TOKEN_BEDROCK as a Bearer token (to http:// too, unlike boto3)."""
    tap = Tap(ReplayProvider(text=TEXT))
    base = api_server(create_app(KEYED, tap))
    got = run_js(
        js_clients, "bedrock.mjs", "converse-stream", env={"ENDPOINT": base, "AWS_BEARER_TOKEN_BEDROCK": "sk-js-client"}
    )
    assert got == {"text": TEXT}
    got = run_js(js_clients, "bedrock.mjs", "converse", env={"ENDPOINT": base, "AWS_BEARER_TOKEN_BEDROCK": "wrong"})
    assert got["error"]["name"] == "UnrecognizedClientException" and got["error"]["status"] == 401
    assert len(tap.runs) == 1

"""Bounded work per request (issue 10 item 2): limits named by their settings on every route, abusive bodies
refused before the model sees them, deep JSON a 400 without a traceback, a cap on upstream streams,
slow bodies timed out, log lines that can't be forged; and a real Chromium page on another loopback
origin that must not start a generation.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading

import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from response_streaming.config import Settings
from response_streaming.providers.replay import ReplayProvider
from response_streaming.server import create_app
from tests.conftest import free_port
from tests.server.test_server_access import CONVERSE, error_of
from tests.server.test_server_openai import TEXT, Tap, server_lines, wait_for

# The abusive bodies, each under the 1 MiB body limit.
TINY_MESSAGES = {"messages": [{"role": "user", "content": "x"}] * 23_831}
MANY_STOPS = {"messages": [{"role": "user", "content": "x"}], "stop": ["s"] * 100_000}
NESTED = b"[" * 100_000 + b"]" * 100_000
CONVERSE_USER = [{"role": "user", "content": "x"}]


def bodies_for(path: str) -> dict[str, bytes]:
    """The abusive bodies in the shape of the route at `path`."""
    if path.endswith("/invoke"):  # Anthropic's native body
        turns = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}] * 23_831}
        stops = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop_sequences": ["s"] * 100_000}
    elif path.startswith("/model/"):
        turns = {"messages": [{"role": "user", "content": [{"text": "x"}]}] * 20_000}
        stops = {**CONVERSE, "inferenceConfig": {"stopSequences": ["s"] * 100_000}}
    elif path == "/v1/stream":
        turns = TINY_MESSAGES
        stops = {"messages": MANY_STOPS["messages"], "params": {"stop": MANY_STOPS["stop"]}}
    else:
        turns, stops = TINY_MESSAGES, MANY_STOPS
    return {
        "RS_MAX_MESSAGES": json.dumps(turns).encode(),
        "RS_MAX_STOP_SEQUENCES": json.dumps(stops).encode(),
        "nested deeper": NESTED,
    }


PATHS = [
    "/v1/chat/completions",
    "/v1/stream",
    "/model/amazon.nova-lite-v1:0/converse-stream",
    "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
]


@pytest.fixture()
def serve(api_server):
    def start(settings: Settings | None = None, **provider_kw):
        tap = Tap(ReplayProvider(text=TEXT, **provider_kw))
        return api_server(create_app(settings or Settings(provider="replay"), tap)), tap

    return start


@pytest.mark.parametrize("path", PATHS[:3])
def test_abusive_bodies_are_refused_before_the_model(serve, caplog, path):
    caplog.set_level(logging.INFO)
    base, tap = serve()
    for words, body in bodies_for(path).items():
        assert len(body) < 1 << 20
        r = httpx.post(base + path, content=body, headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 400 and words in error_of(r), (words, r.text[:200])
    assert tap.runs == [] and httpx.get(f"{base}/health").json()["generations"] == 0
    # ...and the model is free: the next request is answered at once.
    r = httpx.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["choices"][0]["message"]["content"] == TEXT
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Traceback" not in logged and "RecursionError" not in logged
    assert all(rec.exc_info is None for rec in caplog.records)


def test_each_limit_names_its_setting_on_every_route(serve):
    limits = Settings(provider="replay", max_messages=3, max_input_chars=50, max_stop_sequences=2, max_stop_length=5)
    base, tap = serve(limits)
    long_text = "y" * 51
    cases = {
        "/v1/chat/completions": [
            ({"messages": [{"role": "user", "content": "x"}] * 4}, "RS_MAX_MESSAGES"),
            ({"messages": [{"role": "user", "content": long_text}]}, "RS_MAX_INPUT_CHARS"),
            (
                {"messages": [{"role": "system", "content": long_text}, {"role": "user", "content": "x"}]},
                "RS_MAX_INPUT_CHARS",
            ),
            ({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c"]}, "RS_MAX_STOP_SEQUENCES"),
            ({"messages": [{"role": "user", "content": "x"}], "stop": "abcdef"}, "RS_MAX_STOP_LENGTH"),
        ],
        "/v1/stream": [
            ({"messages": [{"role": "user", "content": "x"}] * 4}, "RS_MAX_MESSAGES"),
            ({"messages": [{"role": "user", "content": "x"}], "params": {"system": long_text}}, "RS_MAX_INPUT_CHARS"),
            (
                {"messages": [{"role": "user", "content": "x"}], "params": {"stop": ["a", "b", "c"]}},
                "RS_MAX_STOP_SEQUENCES",
            ),
        ],
        "/model/amazon.nova-lite-v1:0/converse": [
            ({"messages": [{"role": "user", "content": [{"text": "x"}]}] * 4}, "RS_MAX_MESSAGES"),
            ({**CONVERSE, "system": [{"text": long_text}]}, "RS_MAX_INPUT_CHARS"),
            ({**CONVERSE, "inferenceConfig": {"stopSequences": ["abcdef"]}}, "RS_MAX_STOP_LENGTH"),
        ],
        "/model/mistral.mistral-7b-instruct-v0:2/invoke": [
            ({"prompt": "[INST] a [/INST] b [INST] c [/INST] d [INST] e [/INST]"}, "RS_MAX_MESSAGES"),
            ({"prompt": long_text}, "RS_MAX_INPUT_CHARS"),
            ({"prompt": "x", "stop": ["a", "b", "c"]}, "RS_MAX_STOP_SEQUENCES"),
        ],
    }
    for path, bodies in cases.items():
        for body, setting in bodies:
            r = httpx.post(base + path, json=body)
            assert r.status_code == 400 and f"(setting {setting})" in error_of(r), (path, body, r.text)
    assert tap.runs == []


def test_max_tokens_is_capped(serve, local_settings):
    base, _ = serve(Settings(provider="replay", max_output_tokens=5))
    done = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], max_tokens=1_000_000
    )
    assert done.usage.completion_tokens == 5 and done.choices[0].finish_reason == "length"
    from response_streaming.server.validate import Limits

    assert (
        Limits.from_settings(
            local_settings.model_copy(update={"max_output_tokens": 100_000}), "local"
        ).max_output_tokens
        == local_settings.n_ctx
    )


def test_remote_provider_streams_are_capped_with_a_429_in_each_shape(api_server, monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "t")
    # A replay provider named like a remote one: the cap is about the provider's kind, not its wire.
    slow = ReplayProvider(text="word " * 400, rate=40, name="openai")
    base = api_server(create_app(Settings(provider="replay", max_upstream_streams=1, data_dir=tmp_path), slow))
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "stream": True}
    ) as first:
        lines = first.iter_lines()  # kept: a dropped line iterator closes the response (the client leaves)
        assert next(lines).startswith("data: ")
        with pytest.raises(openai.RateLimitError, match="RS_MAX_UPSTREAM_STREAMS"):
            openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], stream=True
            )
        rt = boto3.client(
            "bedrock-runtime",
            endpoint_url=base,
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as err:
            rt.converse_stream(modelId="amazon.nova-lite-v1:0", messages=CONVERSE["messages"])
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        ours = httpx.post(f"{base}/v1/stream", json={"messages": CONVERSE_USER})
        assert ours.status_code == 429 and "RS_MAX_UPSTREAM_STREAMS" in ours.json()["error"]["message"]
    # The slot is given back when the first stream ends (its client left).
    wait_for(lambda: httpx.get(f"{base}/health").json()["generations"] == 0)
    r = httpx.post(f"{base}/v1/chat/completions", json={"messages": CONVERSE_USER, "max_tokens": 3})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "word word word"


def test_a_slow_body_times_out_with_408(serve, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    base, tap = serve(Settings(provider="replay", body_timeout=1))
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"messages":'
        )
        head = b""
        while b"RS_BODY_TIMEOUT" not in head and (data := s.recv(65536)):  # answered without the rest of the body
            head += data
    assert head.startswith(b"HTTP/1.1 408") and b"RS_BODY_TIMEOUT" in head
    assert tap.runs == []


def test_log_lines_cannot_be_forged(serve, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    base, _ = serve()
    httpx.get(f"{base}/v1/x%0D%0A2026-01-01%20INFO%20forged%1B[31m%E2%80%A8")
    line = wait_for(lambda: [ln for ln in server_lines(caplog) if "forged" in ln])[0]
    assert not any(c in line for c in "\r\n\x1b\u2028")
    assert r"\x0d\x0a" in line and r"\x1b[31m" in line and "status=404" in line


PAGE = """<!doctype html><title>attacker</title><script>
async function attack(target) {
  const results = [];
  const body = JSON.stringify({messages: [{role: "user", content: "spend my tokens"}], stream: true});
  for (const path of ["/v1/chat/completions", "/v1/stream"]) {
    // A "simple" request: no preflight, text/plain body; the page can't read the answer but it is sent.
    try { await fetch(target + path, {method: "POST", mode: "no-cors", body}); results.push("sent"); }
    catch (e) { results.push("failed"); }
  }
  const converse = JSON.stringify({messages: [{role: "user", content: [{text: "x"}]}]});
  try { await fetch(target + "/model/amazon.nova-lite-v1:0/converse-stream",
                    {method: "POST", mode: "no-cors", body: converse}); results.push("sent"); }
  catch (e) { results.push("failed"); }
  // A CORS request with a JSON body: the browser asks first (preflight), and the answer must be no.
  try { const r = await fetch(target + "/v1/chat/completions",
                              {method: "POST", headers: {"content-type": "application/json"}, body});
        results.push("read:" + r.status); }
  catch (e) { results.push("blocked"); }
  return results;
}
</script>"""


@pytest.fixture()
def attacker_page():
    """A tiny HTTP server on 127.0.0.2 (another loopback origin) serving PAGE."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.2:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_cannot_start_a_generation(serve, attacker_page, page, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    base, tap = serve()
    page.goto(attacker_page + "/")
    results = page.evaluate("target => attack(target)", base)
    assert results[:3] == ["sent", "sent", "sent"] and results[3] == "blocked"  # sent, and refused by the server
    refused = wait_for(
        lambda: (
            [ln for ln in server_lines(caplog) if "status=403" in ln and "AccessDenied" in ln]
            if len([ln for ln in server_lines(caplog) if "status=403" in ln]) >= 4
            else None
        )
    )
    assert len(refused) >= 4  # three simple POSTs and the preflight
    assert tap.runs == [] and httpx.get(f"{base}/health").json()["generations"] == 0


def test_a_listed_origin_page_can_call_with_cors(serve, attacker_page, page):
    base, tap = serve(Settings(provider="replay", allowed_origins=attacker_page))
    page.goto(attacker_page + "/")
    text = page.evaluate(
        """async target => {
        const r = await fetch(target + "/v1/chat/completions", {method: "POST",
            headers: {"content-type": "application/json"},
            body: JSON.stringify({messages: [{role: "user", content: "hi"}]})});
        return (await r.json()).choices[0].message.content; }""",
        base,
    )
    assert text == TEXT and len(tap.runs) == 1
    # Its simple text/plain requests are still refused: bodies must be JSON.
    page.evaluate(
        """async target => fetch(target + "/v1/stream", {method: "POST", mode: "no-cors",
        body: JSON.stringify({messages: [{role: "user", content: "hi"}]})})""",
        base,
    )
    assert len(tap.runs) == 1


def test_abusive_bodies_leave_the_real_model_free(api_server, local_settings, local_provider):
    """The embedded model behind the server: none of the abusive bodies reaches it, and a real request
    right after them gets the model (its answer is what the model produced)."""
    tap = Tap(local_provider)
    base = api_server(create_app(local_settings, tap))
    for path in PATHS:
        for words, body in bodies_for(path).items():
            r = httpx.post(base + path, content=body, headers={"content-type": "application/json"}, timeout=30)
            assert r.status_code == 400 and words in error_of(r)
    assert tap.runs == []
    with httpx.stream(
        "POST",
        f"{base}/v1/stream",
        json={"messages": [{"role": "user", "content": "Say hello."}], "params": {"max_tokens": 4}},
        timeout=120,
    ) as r:
        raw = r.read().decode()
    assert "event: finish" in raw and len(tap.runs) == 1 and tap.runs[0]["text"]


def test_slow_headers_are_cut_off_by_serve(tmp_path):
    """A client that never finishes its headers (slowloris) loses the connection after RS_HEADER_TIMEOUT;
    the server goes on answering others. Through `serve` itself: the timeout is the HTTP server's."""
    import os
    import subprocess

    from tests.conftest import BIN, wait_http

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RS_")},
        "RS_PROVIDER": "replay",
        "RS_HEADER_TIMEOUT": "1",
    }
    proc = subprocess.Popen(
        [str(BIN / "response-streaming"), "serve", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
            assert s.recv(1000) == b""  # closed by the server, long before this socket's own 30 s
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)

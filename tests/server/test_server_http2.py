"""HTTP/2 specifics (issue 13): a client that resets its stream stops the generation, the 413 limit on a
declared length, and h2 over TLS chosen by ALPN from `serve --ssl-certfile/--ssl-keyfile`.

The rest of the server tests run over both protocols (the `protocol` fixture); these need frames
httpx doesn't send (RST_STREAM, a request whose answer comes before its body), so they speak HTTP/2
with the `h2` library itself, over a plain socket.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import subprocess

import h2.config
import h2.connection
import h2.events
import httpx

from response_streaming.providers.replay import ReplayProvider
from response_streaming.server import create_app
from tests.conftest import BIN, free_port, http_client
from tests.server.test_server_access import certificate  # noqa: F401  (a fixture)
from tests.server.test_server_openai import REPLAY, TEXT, Tap, server_lines, wait_for


class H2:
    """A bare HTTP/2 client connection (prior knowledge) to 127.0.0.1:`port`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, path: str, body: bytes | None, headers: list[tuple[str, str]] = ()) -> int:
        """Open a stream; with `body` None only the headers go (the body would follow)."""
        sid = self.conn.get_next_available_stream_id()
        head = [
            (":method", "POST"),
            (":path", path),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{self.port}"),
            ("content-type", "application/json"),
            *headers,
        ]
        self.conn.send_headers(sid, head)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def events(self) -> list:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        got = self.conn.receive_data(data)
        self.flush()
        return got

    def until(self, kind: type) -> list:
        seen = []
        while not any(isinstance(e, kind) for e in seen):
            seen += self.events()
        return seen

    def close(self) -> None:
        self.sock.close()


def test_a_reset_stream_stops_the_generation(api_server, caplog):
    """On the OpenAI endpoint a client that leaves cancels (our /v1/stream generations are durable)."""
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    tap = Tap(ReplayProvider(text="word " * 2000, rate=50))
    base = api_server(create_app(REPLAY, tap))
    client = H2(int(base.rsplit(":", 1)[1]))

    def chat(max_tokens: int) -> bytes:
        return json.dumps(
            {"messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": max_tokens}
        ).encode()

    sid = client.request("/v1/chat/completions", chat(2000))
    client.until(h2.events.DataReceived)  # the stream started
    client.conn.reset_stream(sid)
    client.flush()
    wait_for(lambda: tap.runs and tap.runs[0]["closed"])
    assert tap.runs[0]["events"] < 2000
    line = wait_for(lambda: [ln for ln in server_lines(caplog) if "outcome=stopped" in ln])[0]
    assert "status=499" in line and "path=/v1/chat/completions" in line
    # The connection is still good for the next stream.
    sid = client.request("/v1/chat/completions", chat(3))
    seen = client.until(h2.events.StreamEnded)
    text = b"".join(e.data for e in seen if isinstance(e, h2.events.DataReceived) and e.stream_id == sid).decode()
    assert text.count('"content":"word"') + text.count('"content":" word"') == 3 and "data: [DONE]" in text
    client.close()


def test_413_on_a_declared_length_before_the_body(api_server):
    base = api_server(create_app(REPLAY, ReplayProvider(text=TEXT)))
    client = H2(int(base.rsplit(":", 1)[1]))
    sid = client.request("/v1/chat/completions", None, [("content-length", str(2 << 20))])
    seen = client.until(h2.events.StreamEnded)
    status = next(dict(e.headers)[b":status"] for e in seen if isinstance(e, h2.events.ResponseReceived))
    body = b"".join(e.data for e in seen if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
    assert status == b"413" and json.loads(body)["error"]["type"] == "invalid_request_error"
    client.close()


def test_serve_speaks_h2_over_tls_by_alpn(certificate, tmp_path):  # noqa: F811
    cert, key = certificate
    port = free_port()
    env = {
        "RS_PROVIDER": "replay",
        "RS_REPLAY_TEXT": "Over h2 and TLS.",
        "PATH": os.environ["PATH"],
        **{k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")},
    }
    proc = subprocess.Popen(
        [
            str(BIN / "response-streaming"),
            "serve",
            "--port",
            str(port),
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tls = ssl.create_default_context(cafile=str(cert))
    try:
        wait_for(lambda: _up(port, tls, proc), timeout=60)
        for protocol in ("HTTP/2", "HTTP/1.1"):
            with http_client(protocol, verify=tls) as c:
                r = c.post(
                    f"https://127.0.0.1:{port}/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "x"}], "stream": True},
                )
                assert r.http_version == protocol and r.status_code == 200
                assert (
                    "".join(
                        json.loads(ln[6:])["choices"][0]["delta"].get("content", "")
                        for ln in r.text.splitlines()
                        if ln.startswith("data: {")
                    )
                    == "Over h2 and TLS."
                )
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "on https://127.0.0.1" in out and "Traceback" not in out


def _up(port: int, tls: ssl.SSLContext, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise AssertionError(proc.stdout.read() if proc.stdout else "exited")
    try:
        return httpx.get(f"https://127.0.0.1:{port}/health", verify=tls, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

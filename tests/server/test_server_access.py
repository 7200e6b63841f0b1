"""Who may call `serve` (issue 10): Host allowlist, Origin and CORS, JSON-only bodies, API keys (Bearer and
AWS SigV4), refusing to listen on a network without keys; every refusal in the caller's API's shape.

Real clients throughout (openai, boto3, httpx); a ReplayProvider behind a `Tap` shows whether a refused
request reached the model (it must not).
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess

import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from response_streaming.config import Settings
from response_streaming.errors import ConfigError
from response_streaming.providers.replay import ReplayProvider
from response_streaming.server import check_exposure
from tests.conftest import BIN, free_port
from tests.server.test_server_openai import PROTOCOLS, TEXT, Tap, http, server_lines, wait_for

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
CONVERSE = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
ROUTES = [("/v1/chat/completions", CHAT), ("/v1/stream", CHAT), ("/model/amazon.nova-lite-v1:0/converse", CONVERSE)]


def error_of(r: httpx.Response) -> str:
    """The message of an error in any of our three shapes (OpenAI, ours: {"error": {...}}; Bedrock: {"message"})."""
    body = r.json()
    return body["error"]["message"] if "error" in body else body["message"]


@pytest.fixture()
def serve(api_server, protocol):
    """`serve(settings)` -> (base URL, Tap); the test's httpx requests (`http(base)`) use `protocol`:
    every check below holds over HTTP/1.1 and HTTP/2 (where the Host name is the `:authority`)."""

    def start(settings: Settings | None = None, text: str = TEXT, **provider_kw):
        tap = Tap(ReplayProvider(text=text, **provider_kw))
        from response_streaming.server import create_app

        base = api_server(create_app(settings or Settings(provider="replay"), tap))
        PROTOCOLS[base] = protocol
        return base, tap

    return start


def test_foreign_host_is_refused_in_each_apis_shape(serve, caplog):
    caplog.set_level(logging.INFO, logger="response_streaming.server")
    base, tap = serve()
    for path, body in ROUTES:
        r = http(base).post(base + path, json=body, headers={"host": "evil.example"})
        assert r.status_code == 403 and "RS_ALLOWED_HOSTS" in error_of(r)
    assert (
        http(base)
        .post(base + ROUTES[2][0], json=CONVERSE, headers={"host": "evil.example"})
        .headers["x-amzn-errortype"]
        .startswith("AccessDeniedException")
    )
    assert http(base).get(f"{base}/health", headers={"host": "evil.example:80"}).status_code == 403
    port = base.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}", "LOCALHOST"):
        assert http(base).get(f"{base}/health", headers={"host": host}).status_code == 200, host
    assert tap.runs == []
    assert any("status=403" in ln and "AccessDenied" in ln for ln in server_lines(caplog))


def test_allowed_hosts_setting(serve):
    base, _ = serve(Settings(provider="replay", allowed_hosts="llm.example.com, 10.0.0.5"))
    assert http(base).get(f"{base}/health", headers={"host": "llm.example.com:8000"}).status_code == 200
    assert http(base).get(f"{base}/health", headers={"host": "10.0.0.5"}).status_code == 200
    assert http(base).get(f"{base}/health", headers={"host": "other.example.com"}).status_code == 403


def test_bound_to_a_network_address_loopback_names_are_not_enough():
    from response_streaming.server import create_app

    settings = Settings(provider="replay", allowed_hosts="llm.example.com")
    app = create_app(settings, ReplayProvider(), bind_host="0.0.0.0")
    # In-process (httpx's ASGI transport): tests don't listen on every address.
    from starlette.testclient import TestClient

    client = TestClient(app, base_url="http://llm.example.com")
    assert client.get("/health").status_code == 200
    assert client.get("/health", headers={"host": "127.0.0.1"}).status_code == 403


def test_foreign_origin_is_refused_and_listed_origin_gets_cors(serve):
    base, tap = serve(Settings(provider="replay", allowed_origins="https://app.example.com"))
    r = http(base).post(f"{base}/v1/chat/completions", json=CHAT, headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and "RS_ALLOWED_ORIGINS" in error_of(r)
    assert "access-control-allow-origin" not in r.headers
    assert http(base).post(f"{base}/v1/chat/completions", json=CHAT, headers={"origin": "null"}).status_code == 403
    pre = http(base).options(
        f"{base}/v1/chat/completions",
        headers={
            "origin": "https://evil.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    assert tap.runs == []

    pre = http(base).options(
        f"{base}/v1/chat/completions",
        headers={
            "origin": "https://app.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert pre.headers["access-control-allow-headers"] == "content-type, authorization"
    ok = http(base).post(f"{base}/v1/chat/completions", json=CHAT, headers={"origin": "https://app.example.com"})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == TEXT
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com" and ok.headers["vary"] == "Origin"
    plain = http(base).post(f"{base}/v1/chat/completions", json=CHAT)  # no Origin: not a browser, no CORS headers
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize(
    "content_type",
    ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_bodies_must_be_json(serve, content_type):
    base, tap = serve()
    headers = {"content-type": content_type} if content_type else {}
    for path, body in ROUTES:
        r = http(base).post(base + path, content=json.dumps(body).encode(), headers=headers)
        if content_type is None and path.startswith("/model/"):
            assert r.status_code == 200  # boto3's InvokeModel sends no Content-Type; Bedrock assumes JSON
            continue
        assert r.status_code == 415 and "application/json" in error_of(r), (path, content_type)
    r = http(base).post(base + ROUTES[2][0], content=b"{}", headers={"content-type": "text/plain"})
    assert r.headers["x-amzn-errortype"].startswith("ValidationException")
    if content_type is not None:
        assert tap.runs == []


KEYS = Settings(provider="replay", api_keys="k-one, k-two", aws_access_keys="AKIDSERVE:s3cret-key")


def test_bearer_keys_for_openai_and_our_api(serve):
    base, tap = serve(KEYS)
    for key in ("k-one", "k-two"):
        c = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
        assert c.chat.completions.create(model="m", messages=CHAT["messages"]).choices[0].message.content == TEXT
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(base_url=f"{base}/v1", api_key="k-on", max_retries=0).chat.completions.create(
            model="m", messages=CHAT["messages"]
        )
    assert err.value.status_code == 401 and err.value.body["type"] == "authentication_error"
    r = http(base).post(f"{base}/v1/stream", json=CHAT)
    assert r.status_code == 401 and "Authorization: Bearer" in error_of(r)
    r = http(base).post(f"{base}/v1/stream", json=CHAT, headers={"authorization": "Bearer k-two"})
    assert r.status_code == 200 and "event: finish" in r.text
    assert http(base).get(f"{base}/health").status_code == 200  # probes need no key
    assert http(base).get(f"{base}/v1/models").status_code == 401
    assert len(tap.runs) == 3


def bedrock_client(base: str, akid: str, secret: str, **kw):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=base,
        region_name="eu-west-1",
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
        **kw,
    )


def test_boto3_sigv4_keys_over_plain_http(serve, monkeypatch):
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    base, tap = serve(KEYS)
    rt = bedrock_client(base, "AKIDSERVE", "s3cret-key")
    events = rt.converse_stream(modelId="amazon.nova-lite-v1:0", messages=CONVERSE["messages"])["stream"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == TEXT
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    answer = rt.invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=json.dumps(body))
    whole = json.loads(answer["body"].read())
    assert whole["content"][0]["text"] == TEXT
    for akid, secret, words in (("AKIDSERVE", "wrong", "does not match"), ("AKIDOTHER", "s3cret-key", "not one")):
        with pytest.raises(ClientError) as err:
            bedrock_client(base, akid, secret).converse(modelId="amazon.nova-lite-v1:0", messages=CONVERSE["messages"])
        assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401 and words in str(err.value)
    assert len(tap.runs) == 2


def test_a_replayed_signature_for_another_body_is_refused(serve):
    """The signature covers the body: a captured request's headers can't carry a different prompt."""
    base, tap = serve(KEYS)
    captured = {}
    rt = bedrock_client(base, "AKIDSERVE", "s3cret-key")
    rt.meta.events.register("before-send.*", lambda request, **kw: captured.update(headers=dict(request.headers)))
    rt.converse(modelId="amazon.nova-lite-v1:0", messages=CONVERSE["messages"])
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in captured["headers"].items()}
    headers.pop("Content-Length", None)
    other = json.dumps({"messages": [{"role": "user", "content": [{"text": "something else"}]}]})
    r = http(base).post(f"{base}/model/amazon.nova-lite-v1%3A0/converse", content=other, headers=headers)
    assert r.status_code == 401 and "does not match" in r.json()["message"]
    assert len(tap.runs) == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl, as an operator would make one)."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


def test_boto3_bedrock_api_key_as_bearer_over_tls(certificate, monkeypatch, tmp_path):
    """boto3 sends AWS_BEARER_TOKEN_BEDROCK only to https endpoints: `serve` on TLS takes it as an API key."""
    cert, key = certificate
    port = free_port()
    env = {
        "RS_PROVIDER": "replay",
        "RS_REPLAY_TEXT": "Over TLS.",
        "RS_API_KEYS": "bedrock-api-key-1",
        "PATH": "/usr/bin:/bin",
    }
    env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")})
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
    try:
        wait_for(lambda: _https_up(port, cert, proc), timeout=60)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-1")
        rt = boto3.client(
            "bedrock-runtime",
            endpoint_url=f"https://127.0.0.1:{port}",
            region_name="us-east-1",
            verify=str(cert),
            config=Config(retries={"total_max_attempts": 1}),
        )
        out = rt.converse(modelId="amazon.nova-lite-v1:0", messages=CONVERSE["messages"])
        assert out["output"]["message"]["content"][0]["text"] == "Over TLS."
        rt.close()
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "wrong")
        rt = boto3.client(
            "bedrock-runtime",
            endpoint_url=f"https://127.0.0.1:{port}",
            region_name="us-east-1",
            verify=str(cert),
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as err:
            rt.converse(modelId="amazon.nova-lite-v1:0", messages=CONVERSE["messages"])
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
        rt.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def _https_up(port: int, cert, proc) -> bool:
    if proc.poll() is not None:
        raise AssertionError(proc.stdout.read())
    try:
        tls = ssl.create_default_context(cafile=str(cert))
        return httpx.get(f"https://127.0.0.1:{port}/health", verify=tls, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_refuses_a_network_address_without_keys(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "RS_PROVIDER": "replay", "HOME": str(tmp_path)}
    env.update({k: v for k, v in os.environ.items() if k == "PYTHONPATH"})
    out = subprocess.run(
        [str(BIN / "response-streaming"), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: --host 0.0.0.0 lets other machines call this server, and no API key is set.")
    assert "RS_API_KEYS" in out.stderr and "--allow-no-keys" in out.stderr


def test_exposure_rules():
    plain = Settings(provider="replay")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert check_exposure(plain, host) is None
    with pytest.raises(ConfigError, match="no API key is set"):
        check_exposure(plain, "192.168.1.5")
    assert "without API keys" in check_exposure(plain, "192.168.1.5", allow_no_keys=True)
    with pytest.raises(ConfigError, match="RS_ALLOWED_HOSTS"):
        check_exposure(Settings(provider="replay", api_keys="k"), "0.0.0.0")
    assert check_exposure(Settings(provider="replay", api_keys="k", allowed_hosts="llm.example.com"), "0.0.0.0") is None
    assert check_exposure(Settings(provider="replay", aws_access_keys="A:B"), "10.0.0.5") is None

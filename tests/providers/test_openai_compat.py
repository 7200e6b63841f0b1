"""The OpenAI-compatible provider: against llama-cpp-python's own OpenAI server (a real server we did
not write) on the bundled GGUF, plus a tiny scripted server for what llama.cpp's server never sends:
its real bytes and hand-written ones split at random points, gzip and deflate event streams (as a
proxy may send them), Ollama's and vLLM's 404 bodies, 429, 5xx, broken streams."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import LLAMA_SERVER_KEY as KEY
from conftest import free_port
from response_streaming.config import Settings
from response_streaming.errors import (
    AccessDenied,
    BadRequest,
    ConfigError,
    ModelNotFound,
    ProviderUnavailable,
    StreamInterrupted,
    Throttled,
)
from response_streaming.events import Finish, Message, Params, TextDelta, Usage
from response_streaming.providers import make_provider
from response_streaming.providers.openai_compat import chat_events, chat_request, http_error
from response_streaming.recorder import Recorder

ASK = [Message("user", "Write one sentence about the sea.")]
SMALL = Params(max_tokens=8, temperature=0.0)


# --- llama-cpp-python's server (the `llama_server` fixture, tests/conftest.py) ----------------------


def provider(base, **kw):
    return make_provider(Settings(provider="openai", openai_base_url=f"{base}/v1", openai_api_key=KEY, **kw))


def test_streams_from_llama_cpp_server(llama_server):
    p = provider(llama_server)
    events = list(p.stream(ASK, SMALL))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason in ("end_turn", "max_tokens")
    assert texts and "".join(texts).strip()
    assert len(texts) <= SMALL.max_tokens  # llama.cpp's server sends one token per chunk
    assert p.model.endswith(".gguf")  # no model set: the first one the server lists


def test_recorder_reports_complete_with_metrics(llama_server):
    rec = Recorder(provider(llama_server).stream(ASK, SMALL)).run()
    assert rec.status == "complete", rec.error
    assert rec.metrics.ttft_ms is not None and 0 < rec.metrics.output_tokens <= SMALL.max_tokens


def test_wrong_or_missing_api_key(llama_server):
    wrong = make_provider(
        Settings(provider="openai", model="m", openai_base_url=f"{llama_server}/v1", openai_api_key="nope")
    )
    with pytest.raises(AccessDenied, match="refused the API key"):
        list(wrong.stream(ASK, SMALL))
    missing = make_provider(Settings(provider="openai", model="m", openai_base_url=f"{llama_server}/v1"))
    with pytest.raises(AccessDenied, match="wants an API key"):
        list(missing.stream(ASK, SMALL))


def test_base_url_without_v1_is_a_clear_404(llama_server):
    p = make_provider(Settings(provider="openai", model="m", openai_base_url=llama_server, openai_api_key=KEY))
    with pytest.raises(ConfigError, match="it usually ends in /v1"):
        list(p.stream(ASK, SMALL))


def test_prompt_too_long_for_the_server(llama_server):
    # llama-cpp-python's server swallows this error when streaming: 200 and an empty body.
    p = provider(llama_server, model="m")
    rec = Recorder(p.stream([Message("user", "word " * 3000)], SMALL)).run()
    assert (rec.status, rec.text) == ("error", "")
    assert "sent nothing back" in rec.error and "too long" in rec.error


def test_context_length_message_of_llama_cpp_server_is_a_bad_request():
    # The exact body llama-cpp-python's server sends when it can report the error (non-streamed calls).
    body = {
        "error": {
            "message": "This model's maximum context length is 2048 tokens. However, you requested 3010 tokens "
            "(3002 in the messages, 8 in the completion). Please reduce the length of the messages "
            "or completion.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    err = http_error(400, json.dumps(body).encode(), "http://h/v1", "m", has_key=False)
    assert isinstance(err, BadRequest) and str(err).startswith("The conversation is too long for m")


def test_stopping_early_closes_the_response(llama_server):
    p = provider(llama_server)
    gen = p.stream(ASK, Params(max_tokens=64, temperature=0.0))
    first = next(e for e in gen if isinstance(e, TextDelta))
    gen.close()  # a Stop click; the server must be free for the next request
    assert first.text
    assert Recorder(p.stream(ASK, SMALL)).run().status == "complete"


def test_real_sse_bytes_split_anywhere_give_the_same_answer(llama_server, scripted):
    body = chat_request("m", ASK, SMALL)
    with httpx.stream(
        "POST", f"{llama_server}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as resp:
        assert resp.status_code == 200
        raw = b"".join(resp.iter_raw())
    assert b"data: " in raw and b"[DONE]" in raw
    replies, url = scripted
    replies.append((200, [raw], "complete"))
    whole = list(scripted_provider(url).stream(ASK, SMALL))
    assert isinstance(whole[-1], Finish) and any(isinstance(e, TextDelta) for e in whole)
    for seed in range(10):
        replies.append((200, split(raw, seed), "complete"))
        assert list(scripted_provider(url).stream(ASK, SMALL)) == whole, seed


def test_cli_with_openai_provider(llama_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    env.update(RS_OPENAI_BASE_URL=f"{llama_server}/v1", RS_OPENAI_API_KEY=KEY)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "response_streaming.cli",
            "ask",
            "Say hello.",
            "--provider",
            "openai",
            "--max-tokens",
            "6",
            "--temperature",
            "0",
            "--stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "[complete]" in out.stderr


# --- Event streams, through a loopback server -------------------------------------------------------


def split(raw: bytes, seed: int) -> list[bytes]:
    """`raw` cut at random points: each part goes out as its own HTTP chunk."""
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(raw)), min(len(raw) - 1, rnd.randint(1, 40))))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


def chunk(content=None, finish=None, usage=None, choices=True) -> dict:
    c = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content} if content is not None else {}, "finish_reason": finish}]
        if choices
        else [],
    }
    if usage:
        c["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return c


OPENAI_STYLE = (
    b": keep-alive comment\r\n\r\n"
    + b"".join(
        b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\r\n\r\n"
        for c in [
            {
                **chunk(""),
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
            },
            chunk("Héllo"),
            chunk(", wörld ✓ 🌊"),
            chunk(finish="length"),
            chunk(choices=False, usage=(12, 3)),
        ]
    )
    + b"data: [DONE]\r\n\r\n"
)


EXPECTED = [TextDelta("Héllo"), TextDelta(", wörld ✓ 🌊"), Usage(12, 3), Finish("max_tokens")]


def test_openai_stream_with_usage_crlf_comments_and_multibyte_split_at_every_byte(scripted):
    replies, url = scripted
    replies.append((200, [OPENAI_STYLE[i : i + 1] for i in range(len(OPENAI_STYLE))], "complete"))
    assert list(scripted_provider(url).stream(ASK, SMALL)) == EXPECTED
    for seed in range(5):
        replies.append((200, split(OPENAI_STYLE, seed), "complete"))
        assert list(scripted_provider(url).stream(ASK, SMALL)) == EXPECTED, seed


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_event_streams_are_read(scripted, encoding):
    # A proxy may compress an event stream; httpx asks for gzip and deflate, so it must read them.
    replies, url = scripted
    packer = zlib.compressobj(wbits=31 if encoding == "gzip" else 15)  # 31: gzip framing; 15: zlib (HTTP deflate)
    # Flushed after every event, as a streaming proxy does, so each event can be read as it comes.
    parts = [
        packer.compress(event + b"\r\n\r\n") + packer.flush(zlib.Z_SYNC_FLUSH)
        for event in OPENAI_STYLE.split(b"\r\n\r\n")
        if event
    ]
    parts.append(packer.flush())
    replies.append((200, parts, "complete", encoding))
    rec = Recorder(scripted_provider(url).stream(ASK, SMALL)).run()
    assert (rec.status, rec.text, rec.error) == ("complete", "Héllo, wörld ✓ 🌊", "")
    assert (rec.metrics.input_tokens, rec.metrics.output_tokens, rec.metrics.stop_reason) == (12, 3, "max_tokens")


def test_event_stream_rules(scripted):
    # Fields other than data are ignored, several data lines are one payload, "\r" alone ends a line.
    replies, url = scripted
    payload = json.dumps(chunk("a\nb"), indent=1).encode()  # a pretty-printed payload spans several data lines
    multi = b"event: message\nid: 7\nretry: 100\n" + b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n"))
    replies.append(
        (
            200,
            [multi + b"\n", b"data: " + json.dumps(chunk(finish="stop")).encode() + b"\r\r", b"data: [DONE]\r", b"\r"],
            "complete",
        )
    )
    assert list(scripted_provider(url).stream(ASK, SMALL)) == [TextDelta("a\nb"), Finish("end_turn")]


def test_a_body_that_is_not_an_event_stream_is_a_clear_error(scripted):
    replies, url = scripted
    replies.append((200, [b"<html>Proxy login</html>"], "complete", None, "text/html"))
    with pytest.raises(ProviderUnavailable, match=r"did not answer with an event stream \(text/html\)"):
        list(scripted_provider(url).stream(ASK, SMALL))


def test_stream_without_finish_or_done_is_incomplete():
    assert list(chat_events([json.dumps(chunk("Hi"))])) == [TextDelta("Hi")]


def test_done_without_finish_reason_still_finishes():
    assert list(chat_events([json.dumps(chunk("Hi")), "[DONE]"])) == [TextDelta("Hi"), Finish("other")]


def test_chat_request_shape():
    body = chat_request(
        "llama3",
        [Message("user", "a"), Message("assistant", "b"), Message("user", "c")],
        Params(max_tokens=9, temperature=0.5, top_p=0.9, stop=("X",), system="S"),
    )
    assert body == {
        "model": "llama3",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 9,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["X"],
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
    }


@pytest.mark.parametrize(
    "status, body, kind, words",
    [
        (
            404,
            {"error": {"message": 'model "llama3" not found, try pulling it first', "type": "api_error"}},  # Ollama
            ModelNotFound,
            "has no model 'llama3'",
        ),
        (
            404,
            {
                "object": "error",
                "message": "The model `llama3` does not exist.",
                "type": "NotFoundError",
                "code": 404,
            },  # vLLM
            ModelNotFound,
            "pull it first",
        ),
        (
            400,
            {"error": {"message": "The model `x` does not exist", "code": "model_not_found"}},
            ModelNotFound,
            "HTTP 400",
        ),
        (404, {"detail": "Not Found"}, ConfigError, "RS_OPENAI_BASE_URL"),
        (401, {"error": {"message": "Incorrect API key provided"}}, AccessDenied, "RS_OPENAI_API_KEY"),
        (403, {"error": "forbidden"}, AccessDenied, "HTTP 403"),
        (400, {"error": {"message": "max_tokens must be at least 1"}}, BadRequest, "max_tokens must be at least 1"),
        (429, {"error": {"message": "Rate limit reached"}}, Throttled, "HTTP 429"),
        (503, "upstream down", ProviderUnavailable, "upstream down"),
    ],
)
def test_http_errors_map_to_actionable_messages(status, body, kind, words):
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    err = http_error(status, raw, "http://host:11434/v1", "llama3", has_key=True)
    assert isinstance(err, kind) and words in str(err)


# --- A scripted server for what llama.cpp's server never sends ------------------------------------


class _Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    replies: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # (status, parts, ending[, Content-Encoding[, Content-Type]])
        status, parts, ending, encoding, content_type = (*self.replies.pop(0), None, None)[:5]
        content_type = content_type or "text/event-stream"
        self.send_response(status)
        if status != 200:
            body = b"".join(parts)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        if ending == "complete":
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = ending != "complete"


@pytest.fixture()
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.daemon_threads = True
    server.handle_error = lambda *a: None
    _Scripted.replies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _Scripted.replies, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def sse(*chunks) -> list[bytes]:
    return [b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + b"\n\n" for c in chunks]


def scripted_provider(url):
    return make_provider(Settings(provider="openai", model="llama3", openai_base_url=url))


def test_ollama_style_404_for_a_missing_model(scripted):
    replies, url = scripted
    replies.append(
        (
            404,
            [json.dumps({"error": {"message": 'model "llama3" not found, try pulling it first'}}).encode()],
            "complete",
        )
    )
    with pytest.raises(ModelNotFound) as info:
        list(scripted_provider(url).stream(ASK, SMALL))
    assert str(info.value) == (
        f"The server at {url} has no model 'llama3' (HTTP 404): pick one it lists at {url}/models "
        '(RS_MODEL or --model), or pull it first (Ollama). The server said: model "llama3" '
        "not found, try pulling it first"
    )


def test_error_object_mid_stream_keeps_partial(scripted):
    replies, url = scripted
    replies.append((200, sse(chunk("Hel"), chunk("lo"), {"error": {"message": "CUDA out of memory"}}), "complete"))
    rec = Recorder(scripted_provider(url).stream(ASK, SMALL)).run()
    assert (rec.status, rec.text) == ("error", "Hello")
    assert "CUDA out of memory" in rec.error and "partial answer is kept" in rec.error


def test_connection_cut_mid_stream_keeps_partial(scripted):
    replies, url = scripted
    replies.append((200, [*sse(chunk("Hel"), chunk("lo")), b'data: {"choi'], "abort"))
    rec = Recorder(scripted_provider(url).stream(ASK, SMALL)).run()
    assert isinstance(rec.exception, StreamInterrupted) and "broke mid-answer" in rec.error
    assert (rec.status, rec.text) == ("error", "Hello")


def test_stream_ending_without_done_is_incomplete(scripted):
    replies, url = scripted
    replies.append((200, sse(chunk("Hel"), chunk("lo")), "complete"))
    rec = Recorder(scripted_provider(url).stream(ASK, SMALL)).run()
    assert (rec.status, rec.text) == ("incomplete", "Hello")


def test_garbled_stream(scripted):
    replies, url = scripted
    replies.append((200, sse(chunk("Hi"), b"<html>oops</html>"), "complete"))
    rec = Recorder(scripted_provider(url).stream(ASK, SMALL)).run()
    assert isinstance(rec.exception, StreamInterrupted) and "garbled" in rec.error
    assert (rec.status, rec.text) == ("error", "Hi")


def test_usage_from_the_final_chunk(scripted):
    replies, url = scripted
    replies.append(
        (200, sse(chunk("Hi"), chunk(finish="stop"), chunk(choices=False, usage=(5, 1)), b"[DONE]"), "complete")
    )
    rec = Recorder(scripted_provider(url).stream(ASK, SMALL)).run()
    assert rec.status == "complete"
    assert (rec.metrics.input_tokens, rec.metrics.output_tokens, rec.metrics.stop_reason) == (5, 1, "end_turn")


def test_429_and_500(scripted):
    replies, url = scripted
    replies.append((429, [b'{"error":{"message":"slow down"}}'], "complete"))
    replies.append((500, [b'{"error":{"message":"model crashed"}}'], "complete"))
    p = scripted_provider(url)
    with pytest.raises(Throttled):
        list(p.stream(ASK, SMALL))
    with pytest.raises(ProviderUnavailable, match="model crashed"):
        list(p.stream(ASK, SMALL))


def test_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    rec = Recorder(make_provider(Settings(provider="openai", model="m", openai_base_url=url)).stream(ASK, SMALL)).run()
    assert rec.status == "error"
    assert rec.error == f"Cannot connect to {url}: is the server running? (RS_OPENAI_BASE_URL)"

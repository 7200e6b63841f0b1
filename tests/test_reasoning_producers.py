"""Every reasoning shape -> our events: pure parsers, then real boto3 against the fake Bedrock and httpx
against a loopback OpenAI-compatible server. A stream without reasoning gives exactly today's events
(the providers' own tests cover that)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import reasoning_fixtures as fx
from bedrock_fake import FakeBedrock, stream_reply
from response_streaming.config import Settings
from response_streaming.events import Finish, Message, Params, ReasoningBlock, ReasoningDelta, TextDelta, Usage
from response_streaming.providers import make_provider
from response_streaming.providers.openai_compat import chat_events
from response_streaming.reasoning import blocks_of, split_inline_reasoning
from response_streaming.wire.bedrock import FAMILIES, converse, invoke

ASK = [Message("user", "What is 2+2?")]
CLAUDE_EVENTS = [
    ReasoningDelta("The user asks 2+2."),
    ReasoningDelta(" That is 4."),
    ReasoningDelta(signature=fx.SIGNATURE),
    ReasoningDelta(redacted=fx.REDACTED),
    TextDelta("2 + 2"),
    TextDelta(" = 4."),
    Usage(42, 61),
    Finish("end_turn", latency_ms=900),
]


def split(events) -> tuple[str, str]:
    thought = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    return thought, "".join(e.text for e in events if isinstance(e, TextDelta))


# --- Pure ------------------------------------------------------------------------------------------


def test_converse_reasoning_content_text_signature_redacted():
    assert list(converse.events(fx.CONVERSE_CLAUDE)) == CLAUDE_EVENTS


def test_blocks_keep_signature_and_redacted_bytes_in_order():
    assert blocks_of(e for e in CLAUDE_EVENTS if isinstance(e, ReasoningDelta)) == (
        ReasoningBlock("The user asks 2+2. That is 4.", fx.SIGNATURE),
        ReasoningBlock(redacted=fx.REDACTED),
    )
    assert blocks_of([ReasoningDelta("unsigned "), ReasoningDelta("thought")]) == (ReasoningBlock("unsigned thought"),)


def test_anthropic_native_thinking_signature_and_redacted_block():
    events = list(invoke.events(FAMILIES["anthropic"], fx.ANTHROPIC_NATIVE))
    assert events == [*CLAUDE_EVENTS[:3], ReasoningDelta(redacted=fx.REDACTED_DATA.encode()), *CLAUDE_EVENTS[4:]]


@pytest.mark.parametrize(
    "family, chunks, inside", [("deepseek", fx.DEEPSEEK_NATIVE, True), ("openai", fx.GPT_OSS_NATIVE, False)]
)
def test_native_inline_families_split(family, chunks, inside):
    assert FAMILIES[family].inline_reasoning == ("inside" if inside else "tags")
    events = list(split_inline_reasoning(invoke.events(FAMILIES[family], chunks), starts_inside=inside))
    thought, answer = split(events)
    assert answer == fx.ANSWER
    assert thought.strip() == ("Okay, the user wants 2+2." if inside else fx.THOUGHT)
    assert events[-2:] == [Usage(12, 30), Finish("end_turn", latency_ms=800)]


@pytest.mark.parametrize("shape", [fx.OPENAI_REASONING_CONTENT, fx.OPENAI_REASONING, fx.OPENAI_BOTH])
def test_openai_reasoning_fields_with_null_content(shape):
    events = list(chat_events(json.dumps(p) for p in shape))
    assert events == [
        ReasoningDelta("We need"),
        ReasoningDelta(" 2+2."),
        TextDelta("2 + 2"),
        TextDelta(" = 4."),
        Usage(12, 30),
        Finish("end_turn"),
    ]


def test_openai_inline_tags_split_at_every_character():
    content = "<think>We need 2+2.</think>\n\n2 + 2 = 4."
    for i in range(len(content) + 1):
        pieces = [c for c in (content[:i], content[i:]) if c]
        payloads = [json.dumps(fx._chunk({"content": p})) for p in pieces] + [json.dumps(fx._chunk({}, "stop"))]
        events = list(split_inline_reasoning(chat_events(payloads)))
        assert split(events) == (fx.THOUGHT, fx.ANSWER), i
        assert events[-1] == Finish("end_turn")


def test_a_stream_without_reasoning_is_unchanged():
    payloads = [json.dumps(fx._chunk({"content": p})) for p in ("Hello", " there", ".")] + ["[DONE]"]
    assert list(split_inline_reasoning(chat_events(payloads))) == list(chat_events(payloads))


# --- Real boto3 against the fake Bedrock --------------------------------------------------------------


@pytest.fixture()
def fake(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with FakeBedrock() as f:
        yield f


def bedrock(fake, model: str, api: str = "converse"):
    return make_provider(
        Settings(
            provider="bedrock",
            model=model,
            bedrock_api=api,
            aws_region="us-east-1",
            bedrock_endpoint_url=fake.url,
            bedrock_read_timeout=5,
            bedrock_max_attempts=1,
        )
    )


def test_converse_reasoning_through_boto3_keeps_signature_and_bytes(fake):
    fake.push(stream_reply([fx.converse_frame(e) for e in fx.CONVERSE_CLAUDE]))
    events = list(bedrock(fake, "us.anthropic.claude-sonnet-4-5-20250929-v1:0").stream(ASK, Params(max_tokens=64)))
    assert events == CLAUDE_EVENTS


def test_anthropic_invoke_through_boto3(fake):
    fake.push(stream_reply(fx.native_frames(fx.ANTHROPIC_NATIVE), invoke=True))
    provider = bedrock(fake, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "invoke")
    events = list(provider.stream(ASK, Params(max_tokens=64)))
    assert events[2:4] == [ReasoningDelta(signature=fx.SIGNATURE), ReasoningDelta(redacted=fx.REDACTED_DATA.encode())]
    assert split(events) == ("The user asks 2+2. That is 4.", fx.ANSWER)


@pytest.mark.parametrize(
    "model, chunks, thought",
    [
        ("us.deepseek.r1-v1:0", fx.DEEPSEEK_NATIVE, "Okay, the user wants 2+2.\n"),
        ("openai.gpt-oss-120b-1:0", fx.GPT_OSS_NATIVE, fx.THOUGHT),
    ],
)
def test_inline_native_families_through_boto3(fake, model, chunks, thought):
    fake.push(stream_reply(fx.native_frames(chunks), invoke=True))
    events = list(bedrock(fake, model, "invoke").stream(ASK, Params(max_tokens=64)))
    assert split(events) == (thought, fx.ANSWER)
    assert events[-1] == Finish("end_turn", latency_ms=800)


# --- A loopback OpenAI-compatible server, bytes written one at a time ---------------------------------


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(len(self.body)):  # every byte its own HTTP chunk: splits land everywhere
            self.wfile.write(b"1\r\n%s\r\n" % self.body[i : i + 1])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@pytest.fixture()
def loopback():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("shape", ["reasoning_content", "reasoning", "both", "inline"])
def test_openai_compatible_shapes_through_http(loopback, shape):
    _Server.body = fx.sse_bytes(
        {
            "reasoning_content": fx.OPENAI_REASONING_CONTENT,
            "reasoning": fx.OPENAI_REASONING,
            "both": fx.OPENAI_BOTH,
            "inline": fx.OPENAI_INLINE,
        }[shape]
    )
    provider = make_provider(Settings(provider="openai", model="m", openai_base_url=loopback))
    events = list(provider.stream(ASK, Params(max_tokens=64)))
    assert split(events) == (fx.THOUGHT, fx.ANSWER)
    assert events[-2:] == [Usage(12, 30), Finish("end_turn")]


@pytest.mark.parametrize("family", ["anthropic", "deepseek", "openai"])
def test_the_fake_bedrock_streams_thinking_through_the_encoders_serve_uses(fake, family):
    """The fake's replies come from the same encoders as `serve`: boto3 and our reader get the thinking back."""
    from bedrock_fake import converse_reply, invoke_reply

    thinking = [ReasoningDelta("Adding"), ReasoningDelta(" up."), ReasoningDelta(signature=fx.SIGNATURE)]
    model = {
        "anthropic": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "deepseek": "us.deepseek.r1-v1:0",
        "openai": "openai.gpt-oss-20b-1:0",
    }[family]
    fake.push(
        converse_reply(["It is", " 4."], thinking=thinking), invoke_reply(family, ["It is", " 4."], thinking=thinking)
    )
    via_converse = list(bedrock(fake, model).stream(ASK, Params(max_tokens=64)))
    assert [e for e in via_converse if isinstance(e, ReasoningDelta)] == thinking
    via_invoke = list(bedrock(fake, model, "invoke").stream(ASK, Params(max_tokens=64)))
    assert split(via_invoke) == ("Adding up.", "It is 4.")  # inline families carry no signature
    if family == "anthropic":
        assert [e for e in via_invoke if isinstance(e, ReasoningDelta)] == thinking


def test_the_embedded_model_stream_is_split_too():
    """LocalStream wraps the engine's events in the tag splitter (a model that thinks in `<think>` tags)."""
    from response_streaming.events import Finish
    from response_streaming.providers.local import LocalStream

    class Engine:
        def release(self, req, wait=True):
            pass

    class Thinker:
        engine = Engine()

        def _events(self, messages, params, handle):
            yield from (TextDelta(t) for t in ("<thi", "nk>Hmm, 2+2", ".</think>\n", "4."))
            yield Finish("end_turn")

    events = list(LocalStream(Thinker(), ASK, Params()))
    assert events == [ReasoningDelta("Hmm, 2+2"), ReasoningDelta("."), TextDelta("4."), Finish("end_turn")]

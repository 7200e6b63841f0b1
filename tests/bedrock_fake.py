"""A loopback fake of the Bedrock runtime HTTP API, scripted per request, speaking the real wire format.

Real boto3 clients talk to it (SigV4-signed requests, `endpoint_url` pointed here). Replies are
binary event-stream frames (`application/vnd.amazon.eventstream`, CRCs included) built with
`wire.eventstream` + `wire.bedrock`, Bedrock's JSON error responses, or deliberately broken
streams: cut mid-frame, a frame with a damaged CRC, a mid-stream exception, a stall.

    with FakeBedrock() as fake:
        fake.push(converse_reply(["Hel", "lo"]))
        client = boto3.client("bedrock-runtime", endpoint_url=fake.url, ...)

Each request takes the next scripted reply; `fake.requests` records what arrived.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import unquote

from response_streaming.events import Finish, TextDelta, Usage
from response_streaming.wire import bedrock as wire
from response_streaming.wire.eventstream import exception_frame

Ending = Literal["complete", "abort", "stall"]


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)  # each part is written (and flushed) as one HTTP chunk
    # complete: end the chunked body properly; abort: drop the connection without ending it;
    # stall: send nothing more until the server stops (for read timeouts).
    ending: Ending = "complete"


@dataclass
class Request:
    method: str
    path: str
    model_id: str
    api: str  # "converse-stream" or "invoke-with-response-stream"
    headers: dict[str, str]
    body: dict


def _events(pieces, stop="end_turn", usage=(9, None), latency=120, finish=True, thinking=()):
    """`thinking`: ReasoningDeltas streamed before the text, as a reasoning model sends them."""
    events = [*thinking, *(TextDelta(p) for p in pieces)]
    if finish:
        events += [Usage(usage[0], usage[1] if usage[1] is not None else len(pieces)), Finish(stop, latency_ms=latency)]
    return events


def stream_reply(frames: list[bytes], ending: Ending = "complete", invoke: bool = False) -> Reply:
    headers = {"Content-Type": wire.EVENTSTREAM_CONTENT_TYPE, "x-amzn-RequestId": "fake-request"}
    if invoke:
        headers["X-Amzn-Bedrock-Content-Type"] = "application/json"
    return Reply(200, headers, frames, ending)


def converse_frames(pieces, **kw) -> list[bytes]:
    """Through the encoder `serve` uses, so the fake and the server send the same sequence."""
    return list(wire.encode(wire.ConverseEncoder(), _events(pieces, **kw)))


def invoke_frames(family: str, pieces, **kw) -> list[bytes]:
    encoder = wire.InvokeEncoder(wire.FAMILIES[family], model_id="fake", input_tokens=9)
    return list(wire.encode(encoder, _events(pieces, **kw), input_tokens=9))


def converse_reply(pieces, **kw) -> Reply:
    """A whole ConverseStream answer: messageStart, one delta per piece, stop, metadata."""
    return stream_reply(converse_frames(pieces, **kw))


def invoke_reply(family: str, pieces, **kw) -> Reply:
    """A whole InvokeModelWithResponseStream answer in `family`'s native chunks."""
    return stream_reply(invoke_frames(family, pieces, **kw), invoke=True)


def exception_reply(
    frames: list[bytes], kind: str, message: str = "Something failed mid-stream.", invoke: bool = False
) -> Reply:
    """`frames` (a started answer), then an exception event such as `throttlingException`."""
    return stream_reply([*frames, exception_frame(kind, message)], invoke=invoke)


def error_reply(error_type: str, message: str) -> Reply:
    """Bedrock's JSON error response (403 AccessDeniedException, 404 ResourceNotFoundException, ...)."""
    status, headers, body = wire.error_response(error_type, message)
    return Reply(status, headers, [body])


def corrupt(frame: bytes) -> bytes:
    """The frame with one payload byte flipped: its message CRC no longer matches."""
    i = len(frame) - 6
    return frame[:i] + bytes([frame[i] ^ 0x20]) + frame[i + 1 :]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        model_id = unquote(parts[1]) if len(parts) >= 3 and parts[0] == "model" else ""
        api = parts[2] if len(parts) >= 3 else ""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        fake = self.server.fake
        fake.requests.append(
            Request("POST", path, model_id, api, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        reply = fake.next_reply()
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if reply.status != 200:
            data = b"".join(reply.parts)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in reply.parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        if reply.ending == "complete":
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        elif reply.ending == "stall":
            self.server.fake.stopping.wait(60)
            self.close_connection = True
        else:  # abort: the body never ends properly; the client sees a broken connection
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeBedrock

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-stream (a Stop) is expected here, not a failure


class FakeBedrock:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def push(self, *replies: Reply) -> FakeBedrock:
        self.script.extend(replies)
        return self

    def next_reply(self) -> Reply:
        if self.script:
            return self.script.popleft()
        return error_reply("InternalServerException", "The fake Bedrock has no scripted reply left for this request.")

    def start(self) -> FakeBedrock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeBedrock:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

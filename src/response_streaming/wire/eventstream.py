"""The AWS binary event-stream framing (`application/vnd.amazon.eventstream`), encoding side.

Frame: total length (u32) · headers length (u32) · CRC32 of those 8 bytes · headers · payload ·
CRC32 of everything before it. Header: name length (u8) · name · type (u8; 7 = string) ·
value length (u16) · value. Decoding is left to botocore's own `EventStreamBuffer`, which is what
every boto3 client uses, so our frames are checked by the real parser.
"""

from __future__ import annotations

import json
import struct
import zlib

STRING = 7


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        out += struct.pack("!B", len(n)) + n + struct.pack("!BH", STRING, len(v)) + v
    return bytes(out)


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    h = encode_headers(headers)
    total = 12 + len(h) + len(payload) + 4
    prelude = struct.pack("!II", total, len(h))
    body = prelude + struct.pack("!I", zlib.crc32(prelude)) + h + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event_frame(event_type: str, body: dict) -> bytes:
    """An `event` message as Bedrock sends it (`contentBlockDelta`, `chunk`, `metadata`, ...)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    return encode_frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """An in-stream exception (`throttlingException`, `modelStreamErrorException`, ...)."""
    payload = json.dumps({"message": message}).encode()
    return encode_frame(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}, payload
    )

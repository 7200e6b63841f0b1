"""Our event-stream frames, read back by botocore's own decoder, split at every byte boundary."""

from __future__ import annotations

import json

from botocore.eventstream import EventStreamBuffer

from response_streaming.wire.eventstream import event_frame, exception_frame


def decode(data: bytes, cut: int):
    buf = EventStreamBuffer()
    messages = []
    for part in (data[:cut], data[cut:]):
        buf.add_data(part)
        messages.extend(buf)
    return messages


def test_frames_round_trip_through_botocore_at_any_split():
    data = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo ✓"}}) + exception_frame(
        "throttlingException", "Too many requests"
    )
    for cut in range(len(data) + 1):
        first, second = decode(data, cut)
        assert first.headers[":event-type"] == "contentBlockDelta"
        assert json.loads(first.payload)["delta"]["text"] == "héllo ✓"
        assert second.headers[":message-type"] == "exception"
        assert second.headers[":exception-type"] == "throttlingException"

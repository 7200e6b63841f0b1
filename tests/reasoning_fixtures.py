"""Reasoning streams as the services send them (shapes from botocore's service model, Anthropic's and
DeepSeek's docs, and vLLM / Ollama / llama.cpp server output), one list per shape.

Bedrock Converse events are the dicts boto3 yields (with `redactedContent` as bytes there, base64 in
the frame's JSON); native chunks are the JSON objects inside `chunk.bytes`; OpenAI-compatible ones are
the `data:` payloads.
"""

from __future__ import annotations

import base64
import json

from response_streaming.wire.bedrock import chunk_frame
from response_streaming.wire.eventstream import event_frame

SIGNATURE = "EqoBCkgIARABGAIiQHk3nQ+3w/Zq8Yt6Jm2m8o1bXc9R0c9m1R5yW5Vx0Ykq4m8M5t1mPzZrj1K9O0rR3q7Xv2l7iYfEhDx1t/1=="
REDACTED = b"\x00\x01encrypted\xff\xfe thinking \x80"  # any bytes: they must come back exactly
REDACTED_DATA = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"  # Anthropic's opaque string

# --- Bedrock ConverseStream: Claude with thinking ------------------------------------------------
CONVERSE_CLAUDE = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "The user asks 2+2."}}, "contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"reasoningContent": {"text": " That is 4."}}, "contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"reasoningContent": {"signature": SIGNATURE}}, "contentBlockIndex": 0}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"reasoningContent": {"redactedContent": REDACTED}}, "contentBlockIndex": 1}},
    {"contentBlockStop": {"contentBlockIndex": 1}},
    {"contentBlockDelta": {"delta": {"text": "2 + 2"}, "contentBlockIndex": 2}},
    {"contentBlockDelta": {"delta": {"text": " = 4."}, "contentBlockIndex": 2}},
    {"contentBlockStop": {"contentBlockIndex": 2}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 42, "outputTokens": 61, "totalTokens": 103}, "metrics": {"latencyMs": 900}}},
]

# --- InvokeModelWithResponseStream, native bodies -----------------------------------------------
ANTHROPIC_NATIVE = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_1",
            "type": "message",
            "role": "assistant",
            "model": "claude",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 42, "output_tokens": 4},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "The user asks 2+2."}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": " That is 4."}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": SIGNATURE}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": REDACTED_DATA}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "2 + 2"}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": " = 4."}},
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 61},
    },
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 42,
            "outputTokenCount": 61,
            "invocationLatency": 900,
            "firstByteLatency": 300,
        },
    },
]

METRICS = {"inputTokenCount": 12, "outputTokenCount": 30, "invocationLatency": 800, "firstByteLatency": 200}

# DeepSeek-R1: the prompt ends in `<think>\n`, so the stream starts inside the thought.
DEEPSEEK_NATIVE = [
    {"choices": [{"text": "Okay, the user", "stop_reason": None}]},
    {"choices": [{"text": " wants 2+2.\n</th", "stop_reason": None}]},
    {"choices": [{"text": "ink>\n\n", "stop_reason": None}]},
    {"choices": [{"text": "2 + 2 = 4.", "stop_reason": None}]},
    {"choices": [{"text": "", "stop_reason": "stop"}], "amazon-bedrock-invocationMetrics": METRICS},
]

GPT_OSS_NATIVE = [
    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "<reas"}}]},
    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "oning>We need 2+2."}}]},
    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "</reasoning>2 + 2 = 4."}}]},
    {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "amazon-bedrock-invocationMetrics": METRICS,
    },
]

# --- OpenAI-compatible servers --------------------------------------------------------------------


def _chunk(delta: dict, finish=None) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 12, "completion_tokens": 30},
}

# DeepSeek's API, vLLM <= 0.10, llama.cpp's server with --reasoning-format deepseek.
OPENAI_REASONING_CONTENT = [
    _chunk({"role": "assistant", "content": None, "reasoning_content": "We need"}),
    _chunk({"content": None, "reasoning_content": " 2+2."}),
    _chunk({"content": "2 + 2", "reasoning_content": None}),
    _chunk({"content": " = 4."}),
    _chunk({}, "stop"),
    USAGE,
]
# vLLM >= 0.11, Ollama, OpenRouter.
OPENAI_REASONING = [
    _chunk({"role": "assistant", "content": "", "reasoning": "We need"}),
    _chunk({"content": "", "reasoning": " 2+2."}),
    _chunk({"content": "2 + 2"}),
    _chunk({"content": " = 4."}),
    _chunk({}, "stop"),
    USAGE,
]
# Both names at once, the same text (vLLM 0.10's transition): it must count once.
OPENAI_BOTH = [
    _chunk({"role": "assistant", "content": None, "reasoning_content": "We need", "reasoning": "We need"}),
    _chunk({"content": None, "reasoning_content": " 2+2.", "reasoning": " 2+2."}),
    _chunk({"content": "2 + 2"}),
    _chunk({"content": " = 4."}),
    _chunk({}, "stop"),
    USAGE,
]
# No reasoning parser: the tags stay in `content`.
OPENAI_INLINE = [
    _chunk({"role": "assistant", "content": "<think>"}),
    _chunk({"content": "We need 2+2."}),
    _chunk({"content": "</think>\n\n"}),
    _chunk({"content": "2 + 2 = 4."}),
    _chunk({}, "stop"),
    USAGE,
]

THOUGHT, ANSWER = "We need 2+2.", "2 + 2 = 4."


# --- Frames ---------------------------------------------------------------------------------------


def converse_frame(event: dict) -> bytes:
    """One ConverseStream event as its event-stream frame (blobs base64 in the JSON, as AWS sends them)."""
    [(kind, body)] = event.items()
    rc = (body.get("delta") or {}).get("reasoningContent") or {}
    if "redactedContent" in rc:
        blob = base64.b64encode(rc["redactedContent"]).decode()
        body = {**body, "delta": {"reasoningContent": {"redactedContent": blob}}}
    return event_frame(kind, body)


def native_frames(chunks: list[dict]) -> list[bytes]:
    return [chunk_frame(c) for c in chunks]


def sse_bytes(payloads: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"

"""Pure parts of the server: SSE / OpenAI chunk encoding (read back by the `openai` package's own SSE
decoder, split at random byte boundaries) and the request-side translations of every API."""

from __future__ import annotations

import json
import random

import pytest
from openai._streaming import SSEDecoder

from response_streaming.errors import BadRequest
from response_streaming.events import Message, Params
from response_streaming.server.bedrock_api import parse_converse, parse_invoke
from response_streaming.server.events_api import parse_stream_request
from response_streaming.server.openai_api import parse_chat_request
from response_streaming.wire import openai as wire_openai
from response_streaming.wire import sse
from response_streaming.wire.bedrock import FAMILIES
from response_streaming.wire.bedrock.common import prompt_to_messages

DEFAULT = Params(max_tokens=77, temperature=0.3, top_p=None, system="be brief")
PIECES = ["Hé", "llo\n\n", "wörld ✓", " data: [DONE]", "\r\n", " 🎉", "\n"]


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(1, 40))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def decode(parts: list[bytes]):
    return list(SSEDecoder().iter_bytes(iter(parts)))


def test_chunk_stream_survives_random_splits():
    enc = wire_openai.ChunkEncoder("m", include_usage=True)
    data = enc.start() + b"".join(enc.delta(p) for p in PIECES) + enc.finish("max_tokens", 3, len(PIECES))
    rng = random.Random(4)
    for _ in range(200):
        events = decode(split_randomly(data, rng))
        assert events[-1].data == "[DONE]"
        chunks = [json.loads(e.data) for e in events[:-1]]
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "".join(PIECES)
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": len(PIECES),
            "total_tokens": 3 + len(PIECES),
        }
        assert {c["id"] for c in chunks} == {enc.id}


def test_error_chunk_has_openai_shape_and_no_done():
    enc = wire_openai.ChunkEncoder("m")
    data = enc.delta("partial") + enc.error("The stream broke.", 502, "StreamInterrupted")
    events = decode(split_randomly(data, random.Random(1)))
    assert all(e.data != "[DONE]" for e in events)
    assert json.loads(events[-1].data) == {
        "error": {"message": "The stream broke.", "type": "server_error", "param": None, "code": "StreamInterrupted"}
    }


def test_sse_event_keeps_newlines_and_names():
    data = (
        sse.sse_event("line one\nline two\n", "delta")
        + sse.sse_comment("keep-alive")
        + sse.sse_json({"a": "é"}, "usage")
    )
    rng = random.Random(9)
    for _ in range(100):
        events = decode(split_randomly(data, rng))
        assert [(e.event, e.data) for e in events] == [("delta", "line one\nline two\n"), ("usage", '{"a":"é"}')]


def test_finish_reasons_in_openai_words():
    assert [
        wire_openai.finish_reason(r) for r in ("end_turn", "stop_sequence", "max_tokens", "content_filtered", None)
    ] == ["stop", "stop", "length", "content_filter", "stop"]


def test_parse_chat_request_maps_roles_parts_and_params():
    req = parse_chat_request(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
            "max_completion_tokens": 5,
            "temperature": 0,
            "top_p": 0.5,
            "stop": "END",
            "seed": 1,
            "user": "x",
        },
        DEFAULT,
    )
    assert req.messages == [Message("user", "hi"), Message("assistant", "yo"), Message("user", "ab")]
    assert req.params == Params(max_tokens=5, temperature=0.0, top_p=0.5, stop=("END",), system="sys\n\ndev")
    assert (req.stream, req.include_usage, req.model) == (True, True, "gpt-4o-mini")
    plain = parse_chat_request({"messages": [{"role": "user", "content": "q"}]}, DEFAULT)
    assert plain.params == DEFAULT and not plain.stream


@pytest.mark.parametrize(
    "body, words",
    [
        ([], "JSON object"),
        ({"messages": []}, "'messages'"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role 'tool'"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "'image_url'"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "last message"),
        ({"messages": [{"role": "user", "content": "  "}]}, "non-empty"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "'temperature' must be between 0 and 2"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}, "'max_tokens' must be an integer"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "'n' must be 1"),
        (
            {"messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 17},
            "at most 16 are allowed (setting RS_MAX_STOP_SEQUENCES)",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "Tools"),
    ],
)
def test_parse_chat_request_says_what_is_wrong(body, words):
    with pytest.raises(BadRequest) as err:
        parse_chat_request(body, DEFAULT)
    assert words in str(err.value)


def test_parse_stream_request():
    messages, params = parse_stream_request(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "params": {"max_tokens": 9, "stop": ["x"], "temperature": None},
        },
        DEFAULT,
    )
    assert messages == [Message("user", "hi")]
    assert params == Params(max_tokens=9, temperature=0.3, top_p=None, stop=("x",), system="be brief")
    for body, words in [
        ({"messages": [{"role": "user", "content": "hi"}], "params": {"max_token": 1}}, "params.max_token is unknown"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, r"messages\[0\] must be"),
        ({"messages": [{"role": "user", "content": "hi"}], "params": {"top_p": 2}}, "top_p"),
    ]:
        with pytest.raises(BadRequest, match=words):
            parse_stream_request(body, DEFAULT)


def test_parse_converse():
    messages, params = parse_converse(
        {
            "messages": [
                {"role": "user", "content": [{"text": "a"}, {"cachePoint": {"type": "default"}}, {"text": "b"}]}
            ],
            "system": [{"text": "sys"}],
            "inferenceConfig": {"maxTokens": 12, "temperature": 0.1, "topP": 0.9, "stopSequences": ["\n\n"]},
        },
        DEFAULT,
    )
    assert messages == [Message("user", "ab")]
    assert params == Params(max_tokens=12, temperature=0.1, top_p=0.9, stop=("\n\n",), system="sys")
    with pytest.raises(BadRequest, match=r"messages\[0\].content\[0\]: only text content is supported, not 'image'"):
        parse_converse({"messages": [{"role": "user", "content": [{"image": {}}]}]}, DEFAULT)
    with pytest.raises(BadRequest, match=r"inferenceConfig\.temperature must be between 0 and 2"):
        parse_converse(
            {"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"temperature": 5}}, DEFAULT
        )
    with pytest.raises(BadRequest, match="toolConfig"):
        parse_converse(
            {"messages": [{"role": "user", "content": [{"text": "x"}]}], "toolConfig": {"tools": [1]}}, DEFAULT
        )


def test_prompt_templates_become_turns():
    llama3 = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe kind.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert prompt_to_messages(llama3) == ([Message("user", "Hi?")], "Be kind.")
    inst = "<s>[INST] <<SYS>>\nSys.\n<</SYS>>\n\nOne [/INST] Uno </s><s>[INST] Two [/INST]"
    assert prompt_to_messages(inst) == (
        [Message("user", "One"), Message("assistant", "Uno"), Message("user", "Two")],
        "Sys.",
    )
    assert prompt_to_messages("Tell me a story.") == ([Message("user", "Tell me a story.")], "")


@pytest.mark.parametrize(
    "model_id, body, expect",
    [
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 7,
                "system": "S",
                "temperature": 0.2,
                "stop_sequences": ["X"],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Q"}]}],
            },
            ([Message("user", "Q")], Params(7, 0.2, None, ("X",), "S")),
        ),
        (
            "us.meta.llama3-1-8b-instruct-v1:0",
            {"prompt": "Q", "max_gen_len": 7, "top_p": 0.5},
            ([Message("user", "Q")], Params(7, 0.3, 0.5, (), "be brief")),
        ),
        (
            "mistral.mistral-7b-instruct-v0:2",
            {"prompt": "<s>[INST] Q [/INST]", "max_tokens": 7, "stop": ["Z"]},
            ([Message("user", "Q")], Params(7, 0.3, None, ("Z",), "be brief")),
        ),
        (
            "amazon.titan-text-express-v1",
            {"inputText": "Q", "textGenerationConfig": {"maxTokenCount": 7, "topP": 0.9}},
            ([Message("user", "Q")], Params(7, 0.3, 0.9, (), "be brief")),
        ),
        (
            "amazon.nova-lite-v1:0",
            {
                "schemaVersion": "messages-v1",
                "system": [{"text": "S"}],
                "messages": [{"role": "user", "content": [{"text": "Q"}]}],
                "inferenceConfig": {"max_new_tokens": 7, "top_p": 0.8},
            },
            ([Message("user", "Q")], Params(7, 0.3, 0.8, (), "S")),
        ),
        (
            "cohere.command-text-v14",
            {"prompt": "Q", "max_tokens": 7, "p": 0.7},
            ([Message("user", "Q")], Params(7, 0.3, 0.7, (), "be brief")),
        ),
    ],
)
def test_parse_invoke_native_bodies(model_id, body, expect):
    from response_streaming.wire.bedrock import family_of

    assert parse_invoke(family_of(model_id), model_id, body, DEFAULT) == expect


def test_parse_invoke_errors():
    with pytest.raises(BadRequest, match=r"Unknown model family for 'acme\.x'"):
        parse_invoke(None, "acme.x", {}, DEFAULT)
    with pytest.raises(BadRequest, match="max_tokens is required"):
        parse_invoke(FAMILIES["anthropic"], "anthropic.x", {"messages": [{"role": "user", "content": "Q"}]}, DEFAULT)
    with pytest.raises(BadRequest, match="needs a prompt string"):
        parse_invoke(FAMILIES["meta"], "meta.x", {"inputs": "Q"}, DEFAULT)

"""Bedrock's pure translation functions with plain dicts: requests, events, chunks, stop reasons, errors."""

from __future__ import annotations

import pytest

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
from response_streaming.providers import bedrock as b
from response_streaming.providers import bedrock_catalog as cat
from response_streaming.wire import bedrock as wire
from response_streaming.wire.bedrock import FAMILIES, converse, family_of, invoke
from response_streaming.wire.bedrock.common import normalise_stop, turns


def family_name(model_id: str) -> str | None:
    family = family_of(model_id)
    return family.name if family else None


CHAT = [Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "Tell me a joke")]


def test_turns_merge_same_role_and_drop_leading_and_trailing_assistant():
    msgs = [
        Message("assistant", "welcome"),
        Message("user", "a"),
        Message("user", "b"),
        Message("assistant", ""),
        Message("assistant", "x"),
        Message("user", "c"),
        Message("assistant", "tail"),
    ]
    assert turns(msgs) == [("user", "a\n\nb"), ("assistant", "x"), ("user", "c")]


def test_turns_refuse_an_empty_prompt():
    with pytest.raises(BadRequest):
        turns([Message("user", "  ")])


def test_converse_request_carries_every_parameter():
    req = converse.request(
        "us.amazon.nova-lite-v1:0",
        CHAT,
        Params(max_tokens=64, temperature=0.2, top_p=0.9, stop=("END",), system=" Be brief. "),
    )
    assert req == {
        "modelId": "us.amazon.nova-lite-v1:0",
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello!"}]},
            {"role": "user", "content": [{"text": "Tell me a joke"}]},
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "system": [{"text": "Be brief."}],
    }


def test_converse_request_leaves_provider_defaults_out():
    req = converse.request("m", [Message("user", "x")], Params(max_tokens=5))
    assert req["inferenceConfig"] == {"maxTokens": 5}
    assert "system" not in req


@pytest.mark.parametrize(
    "family, keys",
    [
        ("anthropic", {"anthropic_version", "max_tokens", "messages", "system", "temperature", "stop_sequences"}),
        ("nova", {"schemaVersion", "messages", "system", "inferenceConfig"}),
        ("meta", {"prompt", "max_gen_len", "temperature"}),
        ("mistral", {"prompt", "max_tokens", "temperature", "stop"}),
        ("titan", {"inputText", "textGenerationConfig"}),
        ("cohere", {"prompt", "max_tokens", "temperature", "stop_sequences", "stream"}),
    ],
)
def test_invoke_bodies_use_each_familys_own_keys(family, keys):
    body = FAMILIES[family].request_body(CHAT, Params(max_tokens=32, temperature=0.5, stop=("END",), system="Sys"))
    assert set(body) == keys
    flat = repr(body)
    assert "Tell me a joke" in flat and "Hello!" in flat and "Sys" in flat


def test_llama_and_mistral_prompts_follow_their_templates():
    llama = FAMILIES["meta"].request_body(CHAT, Params(system="Sys"))["prompt"]
    assert llama.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>")
    assert llama.endswith(
        "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    mistral = FAMILIES["mistral"].request_body(CHAT, Params(system="Sys"))["prompt"]
    assert mistral == "<s>[INST] Sys\n\nHi [/INST] Hello!</s>[INST] Tell me a joke [/INST]"
    nova = FAMILIES["nova"].request_body(CHAT, Params(max_tokens=7, top_p=0.5))
    assert nova["inferenceConfig"] == {"max_new_tokens": 7, "top_p": 0.5}
    assert FAMILIES["titan"].request_body(CHAT, Params())["inputText"].endswith("User: Tell me a joke\nBot:")


def test_converse_events_pass_text_then_usage_and_finish():
    raw = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "lo"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "guardrail_intervened"}},
        {"metadata": {"usage": {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6}, "metrics": {"latencyMs": 77}}},
    ]
    assert list(converse.events(raw)) == [
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(4, 2),
        Finish("content_filtered", latency_ms=77),
    ]


def test_converse_events_without_message_stop_have_no_finish():
    raw = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}},
        {"metadata": {"usage": {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6}, "metrics": {"latencyMs": 1}}},
    ]
    assert list(converse.events(raw)) == [TextDelta("Hel")]


def test_native_events_read_what_wire_encodes_for_every_family():
    import base64
    import json

    from botocore.eventstream import EventStreamBuffer

    events = [TextDelta("Hi"), TextDelta(" there"), Usage(5, 2), Finish("max_tokens", latency_ms=33)]
    for family in wire.FAMILIES:
        buf = EventStreamBuffer()
        buf.add_data(
            b"".join(wire.encode(wire.InvokeEncoder(FAMILIES[family], input_tokens=5), events, input_tokens=5))
        )
        chunks = [json.loads(base64.b64decode(json.loads(m.payload)["bytes"])) for m in buf]
        assert list(invoke.events(FAMILIES[family], chunks)) == events, family


@pytest.mark.parametrize(
    "family, chunks, expected",
    [
        (
            "anthropic",
            [
                {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "A"}},
                {"type": "message_delta", "delta": {"stop_reason": "stop_sequence"}, "usage": {"output_tokens": 1}},
                {"type": "message_stop"},
            ],
            [TextDelta("A"), Usage(3, 1), Finish("stop_sequence")],
        ),
        (
            "meta",
            [
                {"generation": "A", "prompt_token_count": 3, "generation_token_count": 1, "stop_reason": None},
                {"generation": "", "prompt_token_count": None, "generation_token_count": 2, "stop_reason": "length"},
            ],
            [TextDelta("A"), Usage(3, 2), Finish("max_tokens")],
        ),
        (
            "mistral",
            [
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": "A"}, "stop_reason": None}]},
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "stop_reason": "stop"}]},
            ],
            [TextDelta("A"), Finish("end_turn")],
        ),
        (
            "titan",
            [
                {
                    "outputText": "A",
                    "index": 0,
                    "totalOutputTextTokenCount": 1,
                    "completionReason": "CONTENT_FILTERED",
                    "inputTextTokenCount": 3,
                }
            ],
            [TextDelta("A"), Usage(3, 1), Finish("content_filtered")],
        ),
        (
            "cohere",
            [
                {"text": "A", "is_finished": False},
                {"is_finished": True, "finish_reason": "MAX_TOKENS", "response": {"generations": [{"text": "A"}]}},
            ],
            [TextDelta("A"), Finish("max_tokens")],
        ),
        (
            "nova",
            [{"messageStart": {"role": "assistant"}}, {"contentBlockDelta": {"delta": {"text": "A"}}}],
            [TextDelta("A")],
        ),  # no messageStop: incomplete, no Finish
    ],
)
def test_native_chunks_in_shapes_wire_does_not_produce(family, chunks, expected):
    assert list(invoke.events(FAMILIES[family], chunks)) == expected


@pytest.mark.parametrize(
    "raw, ours",
    [
        ("end_turn", "end_turn"),
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("FINISH", "end_turn"),
        ("LENGTH", "max_tokens"),
        ("COMPLETE", "end_turn"),
        ("STOP_CRITERIA_MET", "stop_sequence"),
        ("ERROR_TOXIC", "content_filtered"),
        ("tool_use", "other"),
        (None, "other"),
    ],
)
def test_stop_reasons_normalised(raw, ours):
    assert normalise_stop(raw) == ours


def test_catalogue_families_prefixes_and_default():
    assert family_of("us.anthropic.claude-haiku-4-5-20251001-v1:0").name == "anthropic"
    assert family_of("eu.meta.llama3-2-3b-instruct-v1:0").name == "meta"
    assert family_of("apac.amazon.nova-lite-v1:0").name == "nova"
    assert family_of("global.anthropic.claude-sonnet-4-5-20250929-v1:0").name == "anthropic"
    assert family_of("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1").name == "titan"
    assert family_of("mistral.mistral-7b-instruct-v0:2").name == "mistral"
    assert family_of("cohere.command-light-text-v14").name == "cohere"
    assert family_name("amazon.titan-embed-text-v2:0") is None
    assert family_name("ai21.jamba-1-5-mini-v1:0") is None
    assert cat.check_model("") == cat.DEFAULT_MODEL
    assert cat.info(cat.DEFAULT_MODEL).family == family_name(cat.DEFAULT_MODEL)
    assert all(m.family == family_name(m.id) for m in cat.MODELS)
    assert cat.profile_id_for("anthropic.x", "eu-west-3") == "eu.anthropic.x"
    assert cat.profile_id_for("anthropic.x", "ap-northeast-1") == "apac.anthropic.x"
    assert cat.profile_id_for("us.anthropic.x", "eu-west-3") == "us.anthropic.x"


@pytest.mark.parametrize("model", ["cohere.command-text-v14", "us.cohere.command-text-v14"])
def test_retired_model_names_its_replacement(model):
    with pytest.raises(ModelNotFound) as info:
        cat.check_model(model)
    assert "retired on 2025-08-12" in str(info.value)
    assert cat.DEFAULT_MODEL in str(info.value)


@pytest.mark.parametrize(
    "code, aws, kind, words",
    [
        (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            AccessDenied,
            "Model access",
        ),
        (
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/x is not authorized to perform: bedrock:InvokeModel",
            AccessDenied,
            "bedrock:InvokeModelWithResponseStream",
        ),
        ("ExpiredTokenException", "The security token included in the request is expired", AccessDenied, "expired"),
        (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            AccessDenied,
            "AWS_ACCESS_KEY_ID",
        ),
        ("ResourceNotFoundException", "Model not found.", ModelNotFound, "not offered in us-west-1"),
        ("ResourceNotFoundException", "This model version has reached the end of its life.", ModelNotFound, "retired"),
        (
            "ValidationException",
            "Invocation of model ID anthropic.claude-sonnet-4-20250514-v1:0 with on-demand throughput isn't "
            "supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
            ConfigError,
            "--model us.anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        ("ValidationException", "The provided model identifier is invalid.", ModelNotFound, "check its spelling"),
        ("ValidationException", "Input is too long for requested model.", BadRequest, "too long"),
        ("ValidationException", "temperature must be <= 1", BadRequest, "temperature must be <= 1"),
        ("ThrottlingException", "Too many requests, please wait before trying again.", Throttled, "wait a minute"),
        ("ServiceUnavailableException", "", ProviderUnavailable, "try again in a moment"),
        ("ModelTimeoutException", "", ProviderUnavailable, "took too long"),
    ],
)
def test_api_errors_become_actionable_messages(code, aws, kind, words):
    err = b.api_error(code, aws, "anthropic.claude-sonnet-4-20250514-v1:0", "us-west-1", "https://example")
    assert isinstance(err, kind)
    assert words in str(err)


def test_in_stream_errors_keep_the_partial_only_after_text():
    after = b.in_stream_error("throttlingException", "slow down", True)
    assert isinstance(after, StreamInterrupted) and "partial answer is kept" in str(after)
    before = b.in_stream_error("throttlingException", "slow down", False, "m", "us-east-1")
    assert isinstance(before, Throttled)
    assert isinstance(b.in_stream_error("validationException", "bad", False), BadRequest)

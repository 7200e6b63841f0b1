"""`serve`'s Bedrock runtime API, driven by real, unmodified boto3 and langchain-aws pointed at it
through `endpoint_url`, with dummy credentials (the server checks none). Frames are also read back
with botocore's own `EventStreamBuffer`, split at random byte boundaries.

A scripted ReplayProvider gives a known text, so every client must receive exactly that text.
"""

from __future__ import annotations

import base64
import json
import random

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from response_streaming.errors import ProviderUnavailable, StreamInterrupted, Throttled
from response_streaming.providers.replay import ReplayProvider, split_tokens
from response_streaming.server import create_app
from tests.server.test_server_openai import REPLAY, TEXT

NATIVE_BODIES = {
    "anthropic.claude-3-haiku-20240307-v1:0": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "say it"}],
    },
    "us.meta.llama3-1-8b-instruct-v1:0": {"prompt": "say it", "max_gen_len": 500},
    "mistral.mistral-7b-instruct-v0:2": {"prompt": "<s>[INST] say it [/INST]", "max_tokens": 500},
    "amazon.titan-text-express-v1": {"inputText": "say it", "textGenerationConfig": {"maxTokenCount": 500}},
    "amazon.nova-lite-v1:0": {
        "messages": [{"role": "user", "content": [{"text": "say it"}]}],
        "inferenceConfig": {"max_new_tokens": 500},
    },
    "cohere.command-text-v14": {"prompt": "say it", "max_tokens": 500},
}


def native_text(chunk: dict) -> str:
    """The text in one native chunk, read the way each family's documentation says."""
    if chunk.get("type") == "content_block_delta":
        return chunk["delta"]["text"]
    if "contentBlockDelta" in chunk:
        return chunk["contentBlockDelta"]["delta"]["text"]
    if "outputs" in chunk:
        return chunk["outputs"][0]["text"]
    for key in ("generation", "outputText", "text"):
        if key in chunk:
            return chunk[key] or ""
    return ""


def whole_text(body: dict) -> str:
    if "content" in body:
        return body["content"][0]["text"]
    if "output" in body:
        return body["output"]["message"]["content"][0]["text"]
    if "results" in body:
        return body["results"][0]["outputText"]
    if "generations" in body:
        return body["generations"][0]["text"]
    if "outputs" in body:
        return body["outputs"][0]["text"]
    return body["generation"]


@pytest.fixture()
def bedrock(api_server, monkeypatch):
    """`bedrock(provider)` -> a boto3 bedrock-runtime client talking to a fresh server."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    def make(provider, settings=REPLAY):
        base = api_server(create_app(settings, provider))
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=base,
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}),
        )
        client.base_url = base
        return client

    return make


def test_converse_stream_exact_text_and_events(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT))
    resp = rt.converse_stream(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        messages=[{"role": "user", "content": [{"text": "say it"}]}],
        system=[{"text": "be exact"}],
        inferenceConfig={"maxTokens": 500, "temperature": 0},
    )
    events = list(resp["stream"])
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == TEXT
    assert list(events[0]) == ["messageStart"] and events[0]["messageStart"]["role"] == "assistant"
    assert [next(iter(e)) for e in events[-3:]] == ["contentBlockStop", "messageStop", "metadata"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    usage = events[-1]["metadata"]["usage"]
    assert (
        usage["outputTokens"] == len(split_tokens(TEXT))
        and usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    )


def test_converse_whole(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT))
    resp = rt.converse(
        modelId="amazon.nova-lite-v1:0",
        messages=[{"role": "user", "content": [{"text": "x"}]}],
        inferenceConfig={"maxTokens": 3},
    )
    assert resp["output"]["message"]["content"][0]["text"] == "".join(split_tokens(TEXT)[:3])
    assert resp["stopReason"] == "max_tokens" and resp["usage"]["outputTokens"] == 3


@pytest.mark.parametrize("model_id", list(NATIVE_BODIES))
def test_invoke_with_response_stream_every_family(bedrock, model_id):
    rt = bedrock(ReplayProvider(text=TEXT))
    resp = rt.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(NATIVE_BODIES[model_id]))
    assert resp["contentType"] == "application/json"
    chunks = [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]
    assert "".join(native_text(c) for c in chunks) == TEXT
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == len(split_tokens(TEXT))
    whole = json.loads(rt.invoke_model(modelId=model_id, body=json.dumps(NATIVE_BODIES[model_id]))["body"].read())
    assert whole_text(whole) == TEXT


def test_arn_model_id_with_slash(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT))
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    resp = rt.invoke_model_with_response_stream(
        modelId=arn, body=json.dumps(NATIVE_BODIES["anthropic.claude-3-haiku-20240307-v1:0"])
    )
    assert "".join(native_text(json.loads(e["chunk"]["bytes"])) for e in resp["body"]) == TEXT


@pytest.mark.parametrize(
    "error, code",
    [
        (None, "modelStreamErrorException"),  # the replay's default fault: StreamInterrupted
        (Throttled("Too many requests, slow down."), "throttlingException"),
        (ProviderUnavailable("The model server went away."), "serviceUnavailableException"),
    ],
)
def test_mid_stream_errors_become_exception_frames(bedrock, error, code):
    rt = bedrock(ReplayProvider(text=TEXT, fail_after=2, error=error))
    got = []
    with pytest.raises(EventStreamError) as err:
        for e in rt.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])["stream"]:
            got += [e["contentBlockDelta"]["delta"]["text"]] if "contentBlockDelta" in e else []
    assert err.value.response["Error"]["Code"] == code
    assert "".join(got) == "".join(split_tokens(TEXT)[:2])
    with pytest.raises(EventStreamError) as err:
        for _ in rt.invoke_model_with_response_stream(
            modelId="amazon.nova-lite-v1:0", body=json.dumps(NATIVE_BODIES["amazon.nova-lite-v1:0"])
        )["body"]:
            pass
    assert err.value.response["Error"]["Code"] == code


def test_stream_without_finish_is_not_a_success(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT, finish=False))
    with pytest.raises(EventStreamError) as err:
        list(rt.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])["stream"])
    assert err.value.response["Error"]["Code"] == "modelStreamErrorException"


def test_errors_in_bedrock_shape(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT, fail_after=0, error=Throttled("The local model is busy; try again.")))
    with pytest.raises(ClientError) as err:
        rt.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "busy" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rt.converse(
            modelId="m",
            messages=[{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}]}],
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "only text content is supported, not 'image'" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rt.invoke_model(modelId="acme.mystery-v1", body=b"{}")
    assert err.value.response["Error"]["Code"] == "ValidationException" and "Unknown model family" in str(err.value)
    with pytest.raises(ClientError) as err:
        rt.invoke_model(modelId="amazon.nova-lite-v1:0", body=b"not json")
    assert err.value.response["Error"]["Code"] == "ValidationException" and "not valid JSON" in str(err.value)


def test_frames_read_back_by_botocore_at_random_splits(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT, fail_after=5))
    raw = httpx.post(
        f"{rt.base_url}/model/m/converse-stream", json={"messages": [{"role": "user", "content": [{"text": "x"}]}]}
    ).content
    rng = random.Random(3)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(raw)), 30))
        buf, messages = EventStreamBuffer(), []
        for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
            buf.add_data(raw[a:b])
            messages.extend(buf)
        kinds = [m.headers.get(":event-type") or m.headers[":exception-type"] for m in messages]
        assert kinds == ["messageStart"] + ["contentBlockDelta"] * 5 + ["modelStreamErrorException"]
        assert "".join(json.loads(m.payload)["delta"]["text"] for m in messages[1:6]) == "".join(split_tokens(TEXT)[:5])
        assert json.loads(messages[-1].payload)["message"] == str(
            StreamInterrupted("The model stream broke off (injected fault).")
        )


def test_invoke_chunk_bytes_are_base64_native_json(bedrock):
    rt = bedrock(ReplayProvider(text=TEXT))
    raw = httpx.post(
        f"{rt.base_url}/model/meta.llama3-8b-instruct-v1:0/invoke-with-response-stream", json={"prompt": "x"}
    ).content
    buf = EventStreamBuffer()
    buf.add_data(raw)
    natives = [json.loads(base64.b64decode(json.loads(m.payload)["bytes"])) for m in buf]
    assert "".join(n["generation"] for n in natives) == TEXT
    assert natives[-1]["stop_reason"] == "stop"


def test_langchain_bedrock_converse_streams_exact_text(bedrock):
    from langchain_aws import ChatBedrockConverse

    rt = bedrock(ReplayProvider(text=TEXT))
    llm = ChatBedrockConverse(
        model="amazon.nova-lite-v1:0", region_name="us-east-1", endpoint_url=rt.base_url, max_tokens=500
    )
    chunks = list(llm.stream("say it"))
    assert "".join(c.text for c in chunks) == TEXT
    assert any(c.usage_metadata and c.usage_metadata["output_tokens"] == len(split_tokens(TEXT)) for c in chunks)

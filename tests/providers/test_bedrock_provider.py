"""BedrockProvider through real boto3 against a loopback fake Bedrock runtime speaking the real wire format.

boto3 signs each request (SigV4, dummy keys), botocore retries and parses the binary event stream
exactly as it would against AWS; only the far end is ours (tests/bedrock_fake.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bedrock_fake import (
    FakeBedrock,
    converse_frames,
    converse_reply,
    corrupt,
    error_reply,
    exception_reply,
    invoke_frames,
    invoke_reply,
    stream_reply,
)
from response_streaming.config import Settings
from response_streaming.errors import AccessDenied, BadRequest, ConfigError, ModelNotFound, StreamInterrupted, Throttled
from response_streaming.events import Finish, Message, Params, ReasoningDelta, TextDelta, Usage
from response_streaming.providers import make_provider
from response_streaming.providers.bedrock import BedrockProvider
from response_streaming.providers.bedrock_catalog import DEFAULT_MODEL
from response_streaming.recorder import Recorder
from response_streaming.wire import bedrock as wire

PIECES = ["Once", " upon", " a", " time"]
ASK = [Message("user", "Tell me a story")]
MODELS = {
    "anthropic": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "meta": "meta.llama3-1-8b-instruct-v1:0",
    "mistral": "mistral.mistral-7b-instruct-v0:2",
    "titan": "amazon.titan-text-express-v1",
    "nova": "eu.amazon.nova-lite-v1:0",
    "cohere": "cohere.command-light-text-v14",
    "deepseek": "us.deepseek.r1-v1:0",
    "openai": "openai.gpt-oss-20b-1:0",
}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """Dummy keys, no profile files, no instance metadata: nothing from the developer's AWS setup."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture()
def fake():
    with FakeBedrock() as f:
        yield f


def settings(fake, **kw) -> Settings:
    base = dict(
        provider="bedrock",
        aws_region="us-east-1",
        bedrock_endpoint_url=fake.url,
        bedrock_read_timeout=5,
        bedrock_max_attempts=2,
    )
    return Settings(**{**base, **kw})


SHORT = Params(max_tokens=16)


def run(provider, params=SHORT) -> Recorder:
    return Recorder(provider.stream(ASK, params)).run()


def drain(provider, params=SHORT) -> list:
    return list(provider.stream(ASK, params))


# --- ConverseStream -------------------------------------------------------------------------


def test_converse_stream_end_to_end(fake):
    fake.push(converse_reply(PIECES, stop="max_tokens", usage=(11, 4), latency=321))
    provider = make_provider(settings(fake, model="us.amazon.nova-lite-v1:0"))
    events = list(
        provider.stream(
            [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Story?")],
            Params(max_tokens=4, temperature=0.3, top_p=0.8, stop=("THE END",), system="Be kind"),
        )
    )
    assert events == [*map(TextDelta, PIECES), Usage(11, 4), Finish("max_tokens", latency_ms=321)]
    [req] = fake.requests
    assert (req.api, req.model_id) == ("converse-stream", "us.amazon.nova-lite-v1:0")
    assert req.body["inferenceConfig"] == {
        "maxTokens": 4,
        "temperature": 0.3,
        "topP": 0.8,
        "stopSequences": ["THE END"],
    }
    assert req.body["system"] == [{"text": "Be kind"}]
    assert [m["role"] for m in req.body["messages"]] == ["user", "assistant", "user"]
    # boto3 really signed it, for this region and service.
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKEFAKEFAKE/")
    assert "/us-east-1/bedrock/aws4_request" in req.headers["authorization"]


def test_default_model_is_used_when_none_is_set(fake):
    fake.push(converse_reply(["ok"]))
    provider = make_provider(settings(fake))
    assert provider.model == DEFAULT_MODEL
    assert run(provider).status == "complete"
    assert fake.requests[0].model_id == DEFAULT_MODEL


def test_aws_endpoint_env_variable_is_honoured(fake, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    fake.push(converse_reply(["via env"]))
    rec = run(BedrockProvider(Settings(provider="bedrock")))
    assert (rec.status, rec.text) == ("complete", "via env")
    assert "/eu-west-1/bedrock/" in fake.requests[0].headers["authorization"]


# --- InvokeModelWithResponseStream, every family ---------------------------------------------


@pytest.mark.parametrize("family", wire.FAMILIES)
def test_invoke_stream_for_every_family(fake, family):
    fake.push(invoke_reply(family, PIECES, stop="max_tokens", usage=(9, 4), latency=250))
    provider = make_provider(settings(fake, model=MODELS[family], bedrock_api="invoke"))
    assert provider.family is not None and provider.family.name == family
    events = drain(provider, Params(max_tokens=4, temperature=0.1, system="Sys"))
    # DeepSeek-R1's stream starts inside its thought: text that never closes it is all thinking.
    piece = ReasoningDelta if provider.family.inline_reasoning == "inside" else TextDelta
    assert events == [*map(piece, PIECES), Usage(9, 4), Finish("max_tokens", latency_ms=250)]
    [req] = fake.requests
    assert (req.api, req.model_id) == ("invoke-with-response-stream", MODELS[family])
    assert "Tell me a story" in repr(req.body) and "Sys" in repr(req.body)


@pytest.mark.parametrize("family", wire.FAMILIES)
def test_invoke_stream_without_final_chunk_is_incomplete(fake, family):
    fake.push(stream_reply(invoke_frames(family, PIECES, finish=False), invoke=True))
    rec = run(make_provider(settings(fake, model=MODELS[family], bedrock_api="invoke")))
    answer = "" if family == "deepseek" else "".join(PIECES)  # R1: text before `</think>` is its thinking
    assert (rec.status, rec.text) == ("incomplete", answer)


# --- Mid-stream exceptions --------------------------------------------------------------------


@pytest.mark.parametrize("kind", wire.CONVERSE_STREAM_EXCEPTIONS)
def test_converse_mid_stream_exception_keeps_partial_and_is_not_retried(fake, kind):
    fake.push(
        exception_reply(converse_frames(PIECES[:2], finish=False), kind, "Mid-stream trouble"), converse_reply(PIECES)
    )  # a retry would get this: it must not happen
    provider = make_provider(settings(fake, bedrock_max_attempts=3))
    rec = Recorder(provider.stream(ASK, Params(max_tokens=16))).run()
    assert isinstance(rec.exception, StreamInterrupted) and (rec.status, rec.text) == ("error", "Once upon")
    assert "partial answer is kept" in rec.error
    assert len(fake.requests) == 1


@pytest.mark.parametrize("kind", wire.INVOKE_STREAM_EXCEPTIONS)
def test_invoke_mid_stream_exception_is_an_error_with_partial_text(fake, kind):
    fake.push(exception_reply(invoke_frames("anthropic", PIECES[:3], finish=False), kind, invoke=True))
    rec = run(make_provider(settings(fake, model=MODELS["anthropic"], bedrock_api="invoke")))
    assert rec.status == "error"
    assert rec.text == "Once upon a"
    assert isinstance(rec.exception, StreamInterrupted)
    assert len(fake.requests) == 1


def test_exception_before_any_text_is_retried(fake):
    fake.push(
        exception_reply(converse_frames([], finish=False), "throttlingException", "Too many tokens"),
        converse_reply(PIECES),
    )
    rec = run(make_provider(settings(fake, bedrock_max_attempts=2)))
    assert (rec.status, rec.text) == ("complete", "".join(PIECES))
    assert len(fake.requests) == 2


def test_exception_before_any_text_gives_up_after_max_attempts(fake):
    fake.push(*[exception_reply(converse_frames([], finish=False), "serviceUnavailableException")] * 2)
    rec = run(make_provider(settings(fake, bedrock_max_attempts=2)))
    assert rec.status == "error" and rec.text == ""
    assert "Bedrock could not answer right now" in rec.error
    assert len(fake.requests) == 2


def test_validation_exception_before_text_is_not_retried(fake):
    fake.push(
        exception_reply(
            converse_frames([], finish=False), "validationException", "Input is too long for requested model."
        )
    )
    with pytest.raises(BadRequest, match="too long"):
        drain(make_provider(settings(fake, bedrock_max_attempts=3)))
    assert len(fake.requests) == 1


# --- Broken streams ---------------------------------------------------------------------------


def test_stream_without_message_stop_is_incomplete(fake):
    fake.push(stream_reply(converse_frames(PIECES, finish=False)))
    rec = run(make_provider(settings(fake)))
    assert (rec.status, rec.text) == ("incomplete", "".join(PIECES))
    assert "ended before" in rec.error


def test_stream_cut_mid_frame_is_interrupted_with_partial(fake):
    frames = converse_frames(PIECES)
    fake.push(stream_reply([*frames[:3], frames[3][:10]], ending="abort"))
    provider = make_provider(settings(fake, bedrock_max_attempts=3))
    rec = run(provider)
    assert isinstance(rec.exception, StreamInterrupted) and "truncated" in rec.error
    assert rec.text == "Once upon"
    assert len(fake.requests) == 1


def test_corrupted_frame_is_interrupted_with_partial(fake):
    frames = converse_frames(PIECES)
    fake.push(stream_reply([*frames[:3], corrupt(frames[3]), *frames[4:]]))
    rec = run(make_provider(settings(fake)))
    assert rec.status == "error"
    assert rec.text == "Once upon"
    assert "checksum" in rec.error


def test_stall_hits_the_read_timeout_with_partial(fake):
    fake.push(stream_reply(converse_frames(PIECES)[:2], ending="stall"))
    rec = run(make_provider(settings(fake, bedrock_read_timeout=1)))
    assert isinstance(rec.exception, StreamInterrupted) and "sent nothing for 1 s" in rec.error
    assert rec.text == "Once"


def test_consumer_stopping_early_closes_the_stream(fake):
    fake.push(stream_reply(converse_frames(PIECES)[:2], ending="stall"), converse_reply(["again"]))
    provider = make_provider(settings(fake, bedrock_read_timeout=30))
    gen = provider.stream(ASK, Params(max_tokens=16))
    assert next(gen) == TextDelta("Once")
    gen.close()  # a Stop click: must not wait for the stalled server
    assert run(provider).text == "again"


# --- Errors before the stream -----------------------------------------------------------------


@pytest.mark.parametrize(
    "error_type, aws_message, kind, words",
    [
        (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            AccessDenied,
            "has no access to amazon.nova-lite-v1:0 in us-east-1",
        ),
        ("ResourceNotFoundException", "Model not found.", ModelNotFound, "not offered in us-east-1"),
        ("ValidationException", "Input is too long for requested model.", BadRequest, "too long"),
        (
            "ValidationException",
            "Invocation of model ID amazon.nova-lite-v1:0 with on-demand throughput isn't supported. "
            "Retry your request with the ID or ARN of an inference profile that contains this model.",
            ConfigError,
            "us.amazon.nova-lite-v1:0",
        ),
        ("ExpiredTokenException", "The security token included in the request is expired", AccessDenied, "expired"),
    ],
)
def test_http_errors_before_the_stream(fake, error_type, aws_message, kind, words):
    fake.push(error_reply(error_type, aws_message))
    with pytest.raises(kind) as info:
        drain(make_provider(settings(fake, model="amazon.nova-lite-v1:0")))
    assert words in str(info.value)
    assert len(fake.requests) == 1  # botocore does not retry these


def test_throttling_is_retried_by_botocore_before_the_stream(fake):
    fake.push(
        error_reply("ThrottlingException", "Too many requests, please wait before trying again."),
        converse_reply(PIECES),
    )
    rec = run(make_provider(settings(fake, bedrock_max_attempts=2)))
    assert (rec.status, rec.text) == ("complete", "".join(PIECES))
    assert len(fake.requests) == 2


def test_throttling_gives_up_after_max_attempts(fake):
    fake.push(*[error_reply("ThrottlingException", "Too many requests, please wait before trying again.")] * 2)
    with pytest.raises(Throttled, match="throttling requests"):
        drain(make_provider(settings(fake, bedrock_max_attempts=2)))
    assert len(fake.requests) == 2


def test_parameters_botocore_refuses_never_reach_bedrock(fake):
    with pytest.raises(BadRequest, match=r"Bedrock would reject these parameters: .*maxTokens"):
        drain(make_provider(settings(fake)), Params(max_tokens=0))
    assert fake.requests == []


def test_no_credentials(fake, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    rec = run(make_provider(settings(fake)))
    assert rec.status == "error"
    assert rec.error.startswith("No AWS credentials found")
    assert fake.requests == []


def test_unknown_profile(fake):
    rec = run(make_provider(settings(fake, aws_profile="nope")))
    assert rec.status == "error" and "AWS profile 'nope' does not exist" in rec.error


def test_no_region(fake, monkeypatch):
    rec = run(make_provider(Settings(provider="bedrock")))
    assert rec.status == "error" and "No AWS region is set" in rec.error


def test_unreachable_endpoint_names_it():
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    rec = run(
        make_provider(
            Settings(provider="bedrock", aws_region="us-east-1", bedrock_endpoint_url=url, bedrock_max_attempts=1)
        )
    )
    assert rec.status == "error" and f"Cannot reach Bedrock at {url}" in rec.error


def test_retired_model_is_refused_with_a_replacement(fake):
    with pytest.raises(ModelNotFound) as info:
        make_provider(settings(fake, model="cohere.command-text-v14"))
    assert str(info.value) == (
        f"The Bedrock model cohere.command-text-v14 was retired on 2025-08-12 and no longer "
        f"answers. Use {DEFAULT_MODEL} instead (--model {DEFAULT_MODEL}, or RS_MODEL={DEFAULT_MODEL})."
    )
    assert fake.requests == []


def test_invoke_with_an_unknown_family_is_a_config_error(fake):
    with pytest.raises(ConfigError, match="RS_BEDROCK_API=converse"):
        make_provider(settings(fake, model="ai21.jamba-1-5-mini-v1:0", bedrock_api="invoke"))


# --- Front ends, through settings -------------------------------------------------------------


def _cli_env(fake, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    env.update(RS_BEDROCK_ENDPOINT_URL=fake.url, RS_AWS_REGION="us-east-1", RS_BEDROCK_MAX_ATTEMPTS="1", **extra)
    return env


def test_cli_streams_from_bedrock(fake):
    fake.push(converse_reply(PIECES))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "response_streaming.cli",
            "ask",
            "Tell me a story",
            "--provider",
            "bedrock",
            "--model",
            "us.amazon.nova-micro-v1:0",
            "--max-tokens",
            "8",
        ],
        env=_cli_env(fake),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout) == (0, "Once upon a time\n"), out.stderr
    assert fake.requests[0].model_id == "us.amazon.nova-micro-v1:0"
    assert fake.requests[0].body["inferenceConfig"]["maxTokens"] == 8


def test_cli_reports_mid_stream_failure_and_retired_model(fake):
    fake.push(exception_reply(converse_frames(PIECES[:2], finish=False), "modelStreamErrorException", "GPU fell over"))
    out = subprocess.run(
        [sys.executable, "-m", "response_streaming.cli", "ask", "hi", "--provider", "bedrock"],
        env=_cli_env(fake),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stdout == "Once upon\n"
    assert "error: The model failed while answering (GPU fell over); the partial answer is kept" in out.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "response_streaming.cli",
            "ask",
            "hi",
            "--provider",
            "bedrock",
            "--model",
            "cohere.command-text-v14",
        ],
        env=_cli_env(fake),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "retired on 2025-08-12" in out.stderr and "Traceback" not in out.stderr


def test_streaming_lib_uses_bedrock_from_settings(fake, monkeypatch):
    from langchain_core.callbacks import BaseCallbackHandler

    import streaming_lib

    class Tokens(BaseCallbackHandler):
        def __init__(self):
            self.tokens = []

        def on_llm_new_token(self, token, **kw):
            self.tokens.append(token)

    for key, value in _cli_env(fake, RS_PROVIDER="bedrock", RS_MAX_TOKENS="8").items():
        if key.startswith("RS_"):
            monkeypatch.setenv(key, value)
    fake.push(converse_reply(PIECES))
    handler = Tokens()
    streaming_lib.reset_memory()
    try:
        text = streaming_lib.get_streaming_response("Tell me a story", handler)
    finally:
        streaming_lib.reset_memory()
    assert text == "Once upon a time"
    assert [t for t in handler.tokens if t] == PIECES
    assert fake.requests[0].body["inferenceConfig"]["maxTokens"] == 8

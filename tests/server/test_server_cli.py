"""`response-streaming serve` through its installed entry point, as a user starts it."""

from __future__ import annotations

import os
import subprocess

import boto3
import openai
from botocore.config import Config

from tests.conftest import BIN, free_port, wait_http


def test_serve_command_answers_unchanged_clients_configured_by_env(tmp_path, monkeypatch):
    """Exactly the README's lines: clients get no URL in code, only the environment variables."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    for key, value in {
        "OPENAI_BASE_URL": f"{base}/v1",
        "OPENAI_API_KEY": "offline",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": base,
        "AWS_ACCESS_KEY_ID": "offline",
        "AWS_SECRET_ACCESS_KEY": "offline",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(key, raising=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    env.update(RS_PROVIDER="replay", RS_REPLAY_TEXT="Offline answers, same clients.")
    proc = subprocess.Popen(
        [str(BIN / "response-streaming"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"{base}/health", proc=proc)
        stream = openai.OpenAI(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert (
            "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Offline answers, same clients."
        )
        rt = boto3.client("bedrock-runtime", config=Config(retries={"total_max_attempts": 1}))
        events = rt.converse_stream(
            modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}]
        )
        text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events["stream"] if "contentBlockDelta" in e)
        assert text == "Offline answers, same clients."

        from langchain_aws import ChatBedrockConverse
        from langchain_openai import ChatOpenAI

        assert "".join(c.text for c in ChatOpenAI(model="gpt-4o-mini").stream("hi")) == "Offline answers, same clients."
        assert (
            "".join(c.text for c in ChatBedrockConverse(model="amazon.nova-lite-v1:0").stream("hi"))
            == "Offline answers, same clients."
        )
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "serving provider=replay" in out
    lines = [ln for ln in out.splitlines() if "outcome=" in ln]
    assert any("api=openai" in ln and "outcome=complete" in ln and "tokens=4" in ln for ln in lines)
    assert any(
        "api=bedrock" in ln and "path=/model/amazon.nova-lite-v1:0/converse-stream" in ln and "outcome=complete" in ln
        for ln in lines
    )
    assert "Traceback" not in out

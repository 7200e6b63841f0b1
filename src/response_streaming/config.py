"""Typed settings, resolved in one place.

Precedence: explicit arguments (`Settings(provider=...)`) → environment variables `RS_*` →
a `.env` file in the working directory → the defaults below. AWS settings also honour boto3's own
variables (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`) because boto3 reads them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .events import Params
from .providers import NAMES

if TYPE_CHECKING:
    ProviderName = str
else:  # the registry's names: pydantic checks a value against them and lists them when it is wrong
    ProviderName = Literal[NAMES]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RS_", env_file=".env", extra="ignore")

    provider: ProviderName = Field("local", description=f"Which provider answers: {', '.join(NAMES)}.")
    model: str = Field("", description="Model id for the provider; empty means the provider's default.")

    # Default generation parameters (front ends may override per request).
    max_tokens: int = Field(512, ge=1, description="Longest answer, in tokens.")
    temperature: float | None = Field(
        None, ge=0, le=2, description="Sampling temperature; empty means the provider's default."
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling; empty means the provider's default.")
    system_prompt: str = Field("", description="System prompt sent with every conversation.")
    reasoning: Literal["", "low", "medium", "high"] = Field(
        "",
        description="Ask reasoning models to think first, with this effort (RS_REASONING); empty: the model's default.",
    )

    # Embedded model (llama.cpp).
    local_model: str = Field(
        "smollm2", description="Bundled model: smollm2 (chat, default) or gemma3 (base); see README."
    )
    model_path: Path | None = Field(None, description="A GGUF file instead of a bundled model.")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "response-streaming", description="Where the bundled GGUF is assembled."
    )
    n_ctx: int = Field(4096, ge=256, description="Context window of the embedded model, in tokens.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for llama.cpp; empty means all cores.")
    local_parallel: int = Field(
        4, ge=1, le=64, description="Answers the embedded model writes at once (batched slots)."
    )
    queue_size: int = Field(
        8, ge=0, description="Requests that may wait for a slot of the embedded model before 'busy'."
    )

    # Storage.
    data_dir: Path = Field(
        Path.home() / ".local" / "share" / "response-streaming", description="Where the SQLite history lives."
    )
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")

    # Durable generations (the log of every answer while it streams).
    generation_stale: float = Field(
        15.0,
        gt=0,
        description="Seconds without an owner heartbeat before another process marks a running generation interrupted.",
    )
    generation_retention: float = Field(
        3600.0,
        ge=0,
        description="Seconds an ended generation's log stays readable (re-attach); its message stays forever.",
    )
    generation_heartbeat: float = Field(
        5.0, gt=0, description="Seconds between two owner heartbeats of running generations."
    )
    generation_coalesce_ms: int = Field(
        50,
        ge=0,
        description="Pieces arriving within this many ms are appended to the log together (the first at once).",
    )

    # Amazon Bedrock.
    aws_profile: str = Field("", description="Named AWS profile; empty means boto3's default chain.")
    aws_region: str = Field("", description="AWS region; empty means boto3's default (AWS_REGION, profile).")
    bedrock_endpoint_url: str = Field(
        "", description="Explicit Bedrock runtime endpoint (also AWS_ENDPOINT_URL_BEDROCK_RUNTIME)."
    )
    bedrock_read_timeout: float = Field(60.0, gt=0, description="Seconds allowed between two reads of a stream.")
    bedrock_retry_mode: Literal["standard", "adaptive", "legacy"] = Field(
        "standard", description="botocore retry mode."
    )
    bedrock_max_attempts: int = Field(3, ge=1, description="Attempts before the first token, retries included.")
    bedrock_api: Literal["converse", "invoke"] = Field(
        "converse", description="ConverseStream (any model) or InvokeModelWithResponseStream (native body per family)."
    )

    # OpenAI-compatible servers (Ollama, vLLM, llama.cpp server).
    openai_base_url: str = Field("http://127.0.0.1:11434/v1", description="Base URL ending in /v1.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="API key, if the server wants one.")
    openai_timeout: float = Field(60.0, gt=0, description="Seconds allowed between two reads of a stream.")

    # Replay provider (tests and benchmarks): a fixed text at a fixed rate.
    replay_text: str = Field("", description="Text the replay provider streams; empty means a built-in story.")
    replay_thinking: str = Field(
        "", description="Thinking the replay provider streams before its text (none if empty)."
    )
    replay_rate: float = Field(0.0, ge=0, description="Tokens per second for replay; 0 means as fast as possible.")

    # `serve`: who may call it (issue 10). Lists are comma-separated.
    allowed_hosts: str = Field(
        "",
        description="Host names `serve` answers to besides the loopback names "
        "(RS_ALLOWED_HOSTS, e.g. 'llm.example.com,10.0.0.5'); '*' allows any. Others get 403.",
    )
    allowed_origins: str = Field(
        "",
        description="Browser origins allowed to call `serve` (RS_ALLOWED_ORIGINS, e.g. "
        "'https://app.example.com'); they get CORS headers. Other origins get 403.",
    )
    api_keys: SecretStr = Field(
        SecretStr(""),
        description="Keys `serve` accepts as `Authorization: Bearer <key>` "
        "(RS_API_KEYS, comma-separated); empty means no key is asked for.",
    )
    aws_access_keys: SecretStr = Field(
        SecretStr(""),
        description="Key pairs `serve` accepts as AWS SigV4 signatures "
        "(RS_AWS_ACCESS_KEYS, 'AKID:SECRET,...'), for Bedrock clients over plain HTTP.",
    )

    # The app with sign-in (`.streamlit/secrets.toml` [auth], README "Security"). Lists are comma-separated.
    allowed_emails: str = Field(
        "",
        description="Email addresses that may sign in to the app (RS_ALLOWED_EMAILS); "
        "with RS_ALLOWED_EMAIL_DOMAINS empty too, anyone the OIDC provider signs in may.",
    )
    allowed_email_domains: str = Field(
        "",
        description="Email domains whose users may sign in (RS_ALLOWED_EMAIL_DOMAINS, "
        "e.g. 'example.com'); an address in either list is let in.",
    )
    allowed_providers: str = Field(
        "",
        description="Providers the app offers and accepts (RS_ALLOWED_PROVIDERS, e.g. "
        "'local,openai'); empty means all.",
    )
    allowed_models: str = Field(
        "", description="Model ids the app offers and accepts, for any provider (RS_ALLOWED_MODELS); empty means any."
    )

    # `serve`: bounded work per request. Each error names its setting.
    max_messages: int = Field(1000, ge=1, description="Most messages in one request (RS_MAX_MESSAGES).")
    max_input_chars: int = Field(
        200_000,
        ge=1,
        description="Most characters of messages + system prompt in one "
        "request, checked before any tokenization (RS_MAX_INPUT_CHARS).",
    )
    max_stop_sequences: int = Field(16, ge=0, description="Most stop sequences in one request (RS_MAX_STOP_SEQUENCES).")
    max_stop_length: int = Field(100, ge=1, description="Longest stop sequence, in characters (RS_MAX_STOP_LENGTH).")
    max_output_tokens: int = Field(
        8192,
        ge=1,
        description="Cap on a request's max_tokens (RS_MAX_OUTPUT_TOKENS); the "
        "embedded model is also capped at its context window.",
    )
    max_upstream_streams: int = Field(
        32,
        ge=1,
        description="Concurrent streams `serve` opens to a remote provider "
        "(bedrock, openai) before answering 429 (RS_MAX_UPSTREAM_STREAMS).",
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client may take to send a request body (RS_BODY_TIMEOUT); slower gets 408."
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client may take to send its request headers "
        "before the connection is closed (RS_HEADER_TIMEOUT).",
    )

    def default_params(self) -> Params:
        return Params(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            system=self.system_prompt,
            reasoning=self.reasoning,
        )

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'history.sqlite3'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment (tests build their own `Settings`)."""
    return Settings()

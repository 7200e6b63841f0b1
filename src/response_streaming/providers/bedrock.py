"""Amazon Bedrock through boto3: ConverseStream (any model) or InvokeModelWithResponseStream (native bodies).

Request bodies and event/chunk parsing are `wire.bedrock`'s (one module per format); here are the
error mapping (pure, tested with plain dicts) and `BedrockProvider.stream`, the only I/O. Facts that shape it:
- botocore retries the *initial* call (throttling, 5xx) with backoff; nothing retries an event
  stream once it runs. We add one thing: an exception event that arrives before any text is
  retried like an initial failure (nobody has seen anything yet). After the first piece of text
  nothing is retried; the Recorder keeps the partial text and the user decides.
- A stream that ends without `messageStop` (or the family's own final chunk) yields no `Finish`:
  the Recorder then reports it as incomplete instead of a success.
- botocore raises a CRC failure as `botocore.eventstream.ChecksumMismatch` and a cut connection as
  urllib3's `ProtocolError`, neither a `ClientError`: both are caught and made `StreamInterrupted`.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..config import Settings
from ..errors import (
    AccessDenied,
    BadRequest,
    ConfigError,
    ModelNotFound,
    ProviderUnavailable,
    ResponseStreamingError,
    StreamInterrupted,
    Throttled,
)
from ..events import Event, Message, Params, ReasoningDelta, TextDelta
from ..reasoning import split_inline_reasoning
from ..wire.bedrock import base_model_id, converse, family_of, invoke
from .bedrock_catalog import RETIRED, check_model, profile_id_for, retired_message

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

_RETRY_IN_STREAM = {
    "throttlingException",
    "serviceUnavailableException",
    "internalServerException",
    "modelStreamErrorException",
}

_IN_STREAM = {
    "throttlingException": "Bedrock throttled the answer while it was streaming",
    "modelStreamErrorException": "The model failed while answering",
    "serviceUnavailableException": "Bedrock became unavailable while the answer was streaming",
    "internalServerException": "Bedrock had an internal error while the answer was streaming",
    "validationException": "Bedrock rejected the request while the answer was streaming",
    "modelTimeoutException": "The model timed out while answering",
}


def in_stream_error(
    code: str, aws_message: str, shown: bool, model: str = "", region: str = "", endpoint: str = ""
) -> ResponseStreamingError:
    """An exception event (`throttlingException`, ...) -> our error.

    With text already shown it is `StreamInterrupted` (partial kept, never retried); before any
    text it is the same error the initial call would have given.
    """
    if not shown:
        return api_error(code[:1].upper() + code[1:], aws_message, model, region, endpoint)
    detail = f" ({aws_message})" if code in ("validationException", "modelStreamErrorException") and aws_message else ""
    lead = _IN_STREAM.get(code, f"Bedrock sent {code} while the answer was streaming")
    return StreamInterrupted(f"{lead}{detail}; the partial answer is kept. Retry or continue.")


def api_error(code: str, aws_message: str, model: str, region: str, endpoint: str) -> ResponseStreamingError:
    """A Bedrock error response (error code + AWS's message) -> our error with a message a user can act on."""
    msg = aws_message or ""
    low = msg.lower()
    where = f" in {region}" if region else ""
    if code in ("ExpiredTokenException", "ExpiredToken") or "token included in the request is expired" in low:
        return AccessDenied(
            "Your AWS credentials have expired: refresh them (e.g. `aws sso login`, or new "
            "temporary keys) and try again."
        )
    if code in (
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ):
        return AccessDenied(
            "AWS rejected your credentials (unknown access key or bad signature): check "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or your AWS profile."
        )
    if code == "AccessDeniedException":
        if "don't have access to the model" in low or "do not have access to the model" in low:
            return AccessDenied(
                f"Your AWS account has no access to {model}{where}: grant it in the Bedrock console "
                "(Model access), or choose another model."
            )
        return AccessDenied(
            f"AWS denied the call to {model or 'Bedrock'}{where}: your identity needs the "
            f"bedrock:InvokeModelWithResponseStream permission for it. AWS said: {msg}"
        )
    if code == "ResourceNotFoundException":
        retired = RETIRED.get(base_model_id(model)) if model else None
        if retired:
            return ModelNotFound(retired_message(model, retired))
        if "end of its life" in low or "end of life" in low or "legacy" in low:
            return ModelNotFound(
                f"The Bedrock model {model} has been retired. Choose a current model, e.g. amazon.nova-lite-v1:0."
            )
        return ModelNotFound(
            f"The model {model} is not offered{where}: check the id, or use a region where "
            "Bedrock offers it (RS_AWS_REGION)."
        )
    if code == "ValidationException":
        if "inference profile" in low or "on-demand throughput" in low:
            suggestion = profile_id_for(model, region)
            return ConfigError(
                f"{model} can only be called through a cross-region inference profile{where}: use "
                f"--model {suggestion} (or RS_MODEL={suggestion})."
            )
        if "model identifier is invalid" in low or ("model id" in low and "invalid" in low):
            return ModelNotFound(
                f"Bedrock does not know the model id {model}{where}: check its spelling, and that "
                "Bedrock offers it in this region."
            )
        if "too long" in low or ("too many" in low and "token" in low) or ("context" in low and "exceed" in low):
            return BadRequest(
                f"The conversation is too long for {model}: start a new conversation or shorten the prompt."
            )
        return BadRequest(f"Bedrock rejected the request: {msg}")
    if code in (
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceQuotaExceededException",
        "ModelNotReadyException",
    ):
        return Throttled(
            f"Bedrock is throttling requests to {model or 'the model'}{where}: wait a minute and try "
            "again (or ask AWS for a higher quota)."
        )
    if code == "ModelTimeoutException":
        return ProviderUnavailable(
            f"{model or 'The model'} took too long to answer: try again, or ask for a shorter answer."
        )
    if code in (
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelErrorException",
        "ModelStreamErrorException",
        "InternalFailure",
        "ServiceUnavailable",
    ):
        return ProviderUnavailable(
            f"Bedrock could not answer right now ({code}) at {endpoint or 'its endpoint'}: try again in a moment."
        )
    return ProviderUnavailable(f"Bedrock failed ({code}): {msg}")


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------


def make_client(settings: Settings):
    """A bedrock-runtime client from the AWS settings (profile, region, endpoint, timeouts, retries)."""
    try:
        import boto3
        from botocore import exceptions as bce
        from botocore.config import Config
    except ImportError as err:
        raise ConfigError("boto3 is not installed: run `pip install 'response-streaming[bedrock]'`.") from err
    config = Config(
        read_timeout=settings.bedrock_read_timeout,
        connect_timeout=10,
        retries={"mode": settings.bedrock_retry_mode, "total_max_attempts": settings.bedrock_max_attempts},
        user_agent_extra="response-streaming",
    )
    try:
        # botocore itself reads AWS_DEFAULT_REGION but not AWS_REGION, which the other AWS SDKs and the docs use.
        region = settings.aws_region or os.environ.get("AWS_REGION") or None
        session = boto3.Session(profile_name=settings.aws_profile or None, region_name=region)
        return session.client("bedrock-runtime", endpoint_url=settings.bedrock_endpoint_url or None, config=config)
    except bce.ProfileNotFound as err:
        raise ConfigError(
            f"The AWS profile {settings.aws_profile!r} does not exist: check RS_AWS_PROFILE / AWS_PROFILE "
            "against ~/.aws/config."
        ) from err
    except bce.NoRegionError as err:
        raise ConfigError(
            "No AWS region is set: set RS_AWS_REGION or AWS_REGION (e.g. us-east-1), or a region in your AWS profile."
        ) from err


class _RetryBeforeText(Exception):
    """An attempt failed before any text reached the consumer; `error` is what to raise if we give up."""

    def __init__(self, error: ResponseStreamingError) -> None:
        self.error = error


class BedrockProvider:
    name = "bedrock"
    continues_in_place = False

    def __init__(self, settings: Settings, client=None) -> None:
        self.settings = settings
        self.model = check_model(settings.model)
        self.api = settings.bedrock_api
        self.family = family_of(self.model)
        if self.api == "invoke" and self.family is None:
            raise ConfigError(
                f"Cannot tell the native format of {self.model}: use RS_BEDROCK_API=converse, which "
                "works for every model."
            )
        self._client = client  # injected in tests; otherwise made on first use (creation is slow)
        self._lock = threading.Lock()

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = make_client(self.settings)
            return self._client

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        attempts = self.settings.bedrock_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                yield from self._attempt(messages, params)
                return
            except _RetryBeforeText as retry:
                if attempt >= attempts:
                    raise retry.error from retry.__cause__
                time.sleep(random.uniform(0, min(4.0, 0.5 * 2**attempt)))  # full jitter, as botocore does

    def _attempt(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        from botocore import exceptions as bce
        from botocore.eventstream import ParserError
        from urllib3 import exceptions as u3

        client = self.client
        where = (self.model, client.meta.region_name or "", client.meta.endpoint_url)
        try:
            raw, events = self._open(client, messages, params)
        except (bce.ClientError, bce.BotoCoreError, u3.ReadTimeoutError) as err:
            raise call_error(err, *where, self.settings.bedrock_read_timeout) from err
        shown = False  # text or thinking went out: from then on nothing is retried
        try:
            for event in events:
                shown = shown or isinstance(event, (TextDelta, ReasoningDelta))
                yield event
        except bce.EventStreamError as err:
            error = err.response.get("Error", {})
            code = error.get("Code", "")
            mapped = in_stream_error(code, error.get("Message", ""), shown, *where)
            if not shown and code in _RETRY_IN_STREAM:
                raise _RetryBeforeText(mapped) from err
            raise mapped from err
        except (
            ParserError,
            bce.ReadTimeoutError,
            u3.ReadTimeoutError,
            u3.ProtocolError,
            bce.ResponseStreamingError,
            ConnectionError,
        ) as err:
            raise broken_stream_error(err, self.settings.bedrock_read_timeout) from err
        finally:
            raw.close()

    def _open(self, client, messages: Sequence[Message], params: Params) -> tuple[Any, Iterator[Event]]:
        """Start the call: (the raw event stream to close, our events read from it)."""
        if self.api == "invoke" and self.family is not None:
            body = invoke.request_body(self.family, self.model, messages, params)
            resp = client.invoke_model_with_response_stream(
                modelId=self.model, body=json.dumps(body), contentType="application/json", accept="application/json"
            )
            raw = resp["body"]
            events = invoke.events(self.family, (json.loads(e["chunk"]["bytes"]) for e in raw if "chunk" in e))
            if self.family.inline_reasoning:  # DeepSeek-R1, gpt-oss: thinking inline, split out here
                events = split_inline_reasoning(events, starts_inside=self.family.inline_reasoning == "inside")
            return raw, events
        resp = client.converse_stream(**converse.request(self.model, messages, params, self.family))
        return resp["stream"], converse.events(resp["stream"])


def call_error(err: Exception, model: str, region: str, endpoint: str, read_timeout: float) -> ResponseStreamingError:
    """A failure of the call itself (before any event) -> our error with a message a user can act on."""
    from botocore import exceptions as bce
    from urllib3 import exceptions as u3

    if isinstance(err, bce.ClientError):
        error = err.response.get("Error", {})
        return api_error(error.get("Code", "Unknown"), error.get("Message", ""), model, region, endpoint)
    if isinstance(err, bce.NoCredentialsError):
        return AccessDenied(
            "No AWS credentials found: run `aws configure` or `aws sso login`, set AWS_PROFILE "
            "(or RS_AWS_PROFILE), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        )
    if isinstance(err, (bce.TokenRetrievalError, bce.SSOTokenLoadError, bce.UnauthorizedSSOTokenError)):
        return AccessDenied(
            "Your AWS SSO session has expired: run `aws sso login` (with your --profile) and try again."
        )
    if isinstance(err, bce.NoRegionError):
        return ConfigError("No AWS region is set: set RS_AWS_REGION or AWS_REGION (e.g. us-east-1).")
    if isinstance(err, (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ConnectionClosedError)):
        return ProviderUnavailable(
            f"Cannot reach Bedrock at {endpoint}: check your network, the region "
            "(RS_AWS_REGION) or RS_BEDROCK_ENDPOINT_URL."
        )
    if isinstance(err, (bce.ReadTimeoutError, u3.ReadTimeoutError)):
        return ProviderUnavailable(f"Bedrock at {endpoint} did not answer within {read_timeout:g} s: try again.")
    if isinstance(err, bce.ParamValidationError):  # botocore checks the request against the API model first
        detail = " ".join(str(err).split("\n")[1:3]).strip()
        return BadRequest(f"Bedrock would reject these parameters: {detail}")
    return ProviderUnavailable(f"The call to Bedrock at {endpoint} failed ({type(err).__name__}): try again.")


def broken_stream_error(err: Exception, read_timeout: float) -> StreamInterrupted:
    """The byte stream itself failed after it started (not an exception event): damaged, stalled or cut."""
    from botocore import exceptions as bce
    from botocore.eventstream import ParserError
    from urllib3 import exceptions as u3

    if isinstance(err, ParserError):  # CRC mismatch, impossible lengths: the bytes were damaged
        return StreamInterrupted(
            "The Bedrock stream arrived damaged (an event-stream frame failed its "
            "checksum); the partial answer is kept. Retry."
        )
    if isinstance(err, (bce.ReadTimeoutError, u3.ReadTimeoutError)):
        return StreamInterrupted(
            f"Bedrock sent nothing for {read_timeout:g} s, so the answer was cut off; the "
            "partial answer is kept. Retry."
        )
    return StreamInterrupted(
        "The connection to Bedrock broke mid-answer (the stream was truncated); the partial answer is kept. Retry."
    )

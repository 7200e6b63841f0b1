"""Amazon Bedrock through boto3: ConverseStream (any model) or InvokeModelWithResponseStream (native bodies).

Pure parts (request bodies, event and chunk parsing, stop-reason and error mapping) are module
functions tested with plain dicts. `BedrockProvider.stream` is the only I/O. Facts that shape it:
- botocore retries the *initial* call (throttling, 5xx) with backoff; nothing retries an event
  stream once it runs. We add one thing: an exception event that arrives before any text is
  retried like an initial failure (nobody has seen anything yet). After the first piece of text
  nothing is retried; the error carries the partial text and the user decides.
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
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from ..config import Settings
from ..errors import (AccessDenied, BadRequest, ConfigError, ModelNotFound, ProviderUnavailable, ResponseStreamingError,
                      StreamInterrupted, Throttled)
from ..events import Event, Finish, Message, Params, StopReason, TextDelta, Usage
from .bedrock_catalog import RETIRED, base_model_id, check_model, family_of, profile_id_for, retired_message

# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def turns(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(role, text) turns Bedrock accepts: starting with the user, alternating, ending with the user.

    The history may hold two user turns in a row (an answer that failed with no text is not kept):
    they are joined, because Converse rejects consecutive turns of one role.
    """
    out: list[tuple[str, str]] = []
    for m in messages:
        text = m.content.strip()
        if not text or (not out and m.role != "user"):
            continue
        if out and out[-1][0] == m.role:
            out[-1] = (m.role, out[-1][1] + "\n\n" + text)
        else:
            out.append((m.role, text))
    while out and out[-1][0] != "user":
        out.pop()
    if not out:
        raise BadRequest("The prompt is empty: type a question or some text to continue.")
    return out


def converse_request(model_id: str, messages: Sequence[Message], params: Params) -> dict:
    """Keyword arguments for `client.converse_stream(...)`."""
    config: dict = {"maxTokens": params.max_tokens}
    if params.temperature is not None:
        config["temperature"] = params.temperature
    if params.top_p is not None:
        config["topP"] = params.top_p
    if params.stop:
        config["stopSequences"] = list(params.stop)
    req = {"modelId": model_id, "messages": [{"role": r, "content": [{"text": t}]} for r, t in turns(messages)],
           "inferenceConfig": config}
    if params.system.strip():
        req["system"] = [{"text": params.system.strip()}]
    return req


def _transcript(messages: Sequence[Message], system: str, user: str, bot: str) -> str:
    lines = [system.strip(), ""] if system.strip() else []
    lines += [f"{user if r == 'user' else bot}: {t}" for r, t in turns(messages)]
    return "\n".join(lines + [f"{bot}:"])


def _llama3_prompt(messages: Sequence[Message], system: str) -> str:
    parts = ["<|begin_of_text|>"]
    if system.strip():
        parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system.strip()}<|eot_id|>")
    parts += [f"<|start_header_id|>{r}<|end_header_id|>\n\n{t}<|eot_id|>" for r, t in turns(messages)]
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _mistral_prompt(messages: Sequence[Message], system: str) -> str:
    out, sys_text = "<s>", system.strip()
    for r, t in turns(messages):
        if r == "user":
            out += f"[INST] {sys_text + chr(10) * 2 if sys_text else ''}{t} [/INST]"
            sys_text = ""  # Mistral has no system role: it goes in front of the first instruction
        else:
            out += f" {t}</s>"
    return out


def invoke_body(family: str, messages: Sequence[Message], params: Params) -> dict:
    """The native request body of InvokeModelWithResponseStream for a model family."""
    p, stop, system = params, list(params.stop), params.system

    def opt(**kv):  # leave out "provider default" values instead of sending null
        return {k: v for k, v in kv.items() if v is not None and v != []}

    if family == "anthropic":
        return opt(anthropic_version="bedrock-2023-05-31", max_tokens=p.max_tokens,
                   messages=[{"role": r, "content": [{"type": "text", "text": t}]} for r, t in turns(messages)],
                   system=system.strip() or None, temperature=p.temperature, top_p=p.top_p, stop_sequences=stop)
    if family == "nova":
        return opt(schemaVersion="messages-v1",
                   messages=[{"role": r, "content": [{"text": t}]} for r, t in turns(messages)],
                   system=[{"text": system.strip()}] if system.strip() else None,
                   inferenceConfig=opt(max_new_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p,
                                       stopSequences=stop))
    if family == "meta":  # Llama on Bedrock takes no stop sequences
        return opt(prompt=_llama3_prompt(messages, system), max_gen_len=p.max_tokens, temperature=p.temperature,
                   top_p=p.top_p)
    if family == "mistral":
        return opt(prompt=_mistral_prompt(messages, system), max_tokens=p.max_tokens, temperature=p.temperature,
                   top_p=p.top_p, stop=stop)
    if family == "titan":
        return {"inputText": _transcript(messages, system, "User", "Bot"),
                "textGenerationConfig": opt(maxTokenCount=p.max_tokens, temperature=p.temperature, topP=p.top_p,
                                            stopSequences=stop)}
    if family == "cohere":
        return opt(prompt=_transcript(messages, system, "User", "Chatbot"), max_tokens=p.max_tokens,
                   temperature=p.temperature, p=p.top_p, stop_sequences=stop, stream=True)
    raise ConfigError(f"No native request format for Bedrock model family {family!r}: use RS_BEDROCK_API=converse.")


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn", "stop": "end_turn", "finish": "end_turn", "complete": "end_turn",
    "max_tokens": "max_tokens", "length": "max_tokens", "model_context_window_exceeded": "max_tokens",
    "stop_sequence": "stop_sequence", "stop_criteria_met": "stop_sequence",
    "content_filtered": "content_filtered", "guardrail_intervened": "content_filtered", "error_toxic": "content_filtered",
}


def normalise_stop(reason: str | None) -> StopReason:
    """Any family's stop reason (end_turn, stop, length, FINISH, LENGTH, COMPLETE, ...) in our words."""
    return _STOP.get((reason or "").lower(), "other")


def converse_events(raw: Iterable[dict]) -> Iterator[Event]:
    """ConverseStream events (as boto3 yields them) -> our events.

    Text is passed on at once; usage and latency come from `metadata`, the stop reason from
    `messageStop`. `Usage` and `Finish` are sent when the stream ends, and only if `messageStop`
    came: without it the answer is incomplete.
    """
    reason: StopReason | None = None
    usage: Usage | None = None
    latency: int | None = None
    for event in raw:
        if "contentBlockDelta" in event:
            text = event["contentBlockDelta"].get("delta", {}).get("text")
            if text:
                yield TextDelta(text)
        elif "messageStop" in event:
            reason = normalise_stop(event["messageStop"].get("stopReason"))
        elif "metadata" in event:
            u = event["metadata"].get("usage") or {}
            usage = Usage(int(u.get("inputTokens", 0)), int(u.get("outputTokens", 0)))
            latency = (event["metadata"].get("metrics") or {}).get("latencyMs")
    if reason is None:
        return
    if usage is not None:
        yield usage
    yield Finish(reason, latency_ms=latency)


@dataclass(frozen=True, slots=True)
class NativeChunk:
    """What one native JSON chunk says, whatever its family."""

    text: str = ""
    stop: str | None = None  # the family's own stop word, when this chunk carries it
    input_tokens: int | None = None
    output_tokens: int | None = None
    done: bool = False  # the family's final chunk


def parse_native_chunk(family: str, chunk: dict) -> NativeChunk:
    """One decoded `chunk` payload of InvokeModelWithResponseStream, read in its family's format."""
    c = chunk
    if family == "anthropic":
        kind = c.get("type")
        if kind == "message_start":
            return NativeChunk(input_tokens=(c.get("message", {}).get("usage") or {}).get("input_tokens"))
        if kind == "content_block_delta":
            return NativeChunk(text=(c.get("delta") or {}).get("text") or "")
        if kind == "message_delta":
            return NativeChunk(stop=(c.get("delta") or {}).get("stop_reason"),
                               output_tokens=(c.get("usage") or {}).get("output_tokens"))
        return NativeChunk(done=kind == "message_stop")
    if family == "meta":
        return NativeChunk(text=c.get("generation") or "", stop=c.get("stop_reason"),
                           input_tokens=c.get("prompt_token_count"), output_tokens=c.get("generation_token_count"),
                           done=c.get("stop_reason") is not None)
    if family == "mistral":
        # Text models send {"outputs": [...]}; chat-style ones (Mistral Large 24.07) {"choices": [...]}.
        if c.get("outputs"):
            out = c["outputs"][0]
            text, stop = out.get("text") or "", out.get("stop_reason")
        elif c.get("choices"):
            out = c["choices"][0]
            text = (out.get("message") or out.get("delta") or {}).get("content") or ""
            stop = out.get("stop_reason") or out.get("finish_reason")
        else:
            text, stop = "", None
        return NativeChunk(text=text, stop=stop, done=stop is not None)
    if family == "titan":
        stop = c.get("completionReason")
        return NativeChunk(text=c.get("outputText") or "", stop=stop, input_tokens=c.get("inputTextTokenCount"),
                           output_tokens=c.get("totalOutputTextTokenCount"), done=stop is not None)
    if family == "nova":
        if "contentBlockDelta" in c:
            return NativeChunk(text=(c["contentBlockDelta"].get("delta") or {}).get("text") or "")
        if "messageStop" in c:
            return NativeChunk(stop=c["messageStop"].get("stopReason"), done=True)
        if "metadata" in c:
            u = c["metadata"].get("usage") or {}
            return NativeChunk(input_tokens=u.get("inputTokens"), output_tokens=u.get("outputTokens"))
        return NativeChunk()
    if family == "cohere":
        # Legacy Command: {"text", "is_finished"}; Command R adds "event_type" with the same keys.
        finished = bool(c.get("is_finished"))
        return NativeChunk(text="" if finished else c.get("text") or "", stop=c.get("finish_reason"), done=finished)
    raise ConfigError(f"No native response format for Bedrock model family {family!r}: use RS_BEDROCK_API=converse.")


def native_events(family: str, chunks: Iterable[dict]) -> Iterator[Event]:
    """Decoded native chunks -> our events; usage preferably from `amazon-bedrock-invocationMetrics`.

    `Usage` and `Finish` are sent when the stream ends, and only if the family's final chunk came.
    """
    stop: str | None = None
    done = False
    inp = out = latency = None
    for chunk in chunks:
        c = parse_native_chunk(family, chunk)
        if c.text:
            yield TextDelta(c.text)
        stop = c.stop or stop
        inp = c.input_tokens if c.input_tokens is not None else inp
        out = c.output_tokens if c.output_tokens is not None else out
        done = done or c.done
        metrics = chunk.get("amazon-bedrock-invocationMetrics")
        if metrics:  # Bedrock's own count beats the model's
            inp = metrics.get("inputTokenCount", inp)
            out = metrics.get("outputTokenCount", out)
            latency = metrics.get("invocationLatency")
    if not done:
        return
    if inp is not None or out is not None:
        yield Usage(int(inp or 0), int(out or 0))
    yield Finish(normalise_stop(stop), latency_ms=latency)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

_RETRY_IN_STREAM = {"throttlingException", "serviceUnavailableException", "internalServerException",
                    "modelStreamErrorException"}

_IN_STREAM = {
    "throttlingException": "Bedrock throttled the answer while it was streaming",
    "modelStreamErrorException": "The model failed while answering",
    "serviceUnavailableException": "Bedrock became unavailable while the answer was streaming",
    "internalServerException": "Bedrock had an internal error while the answer was streaming",
    "validationException": "Bedrock rejected the request while the answer was streaming",
    "modelTimeoutException": "The model timed out while answering",
}


def in_stream_error(code: str, aws_message: str, partial: str, model: str = "", region: str = "",
                    endpoint: str = "") -> ResponseStreamingError:
    """An exception event (`throttlingException`, ...) -> our error.

    With text already shown it is `StreamInterrupted` (partial kept, never retried); before any
    text it is the same error the initial call would have given.
    """
    if not partial:
        return api_error(code[:1].upper() + code[1:], aws_message, model, region, endpoint)
    detail = f" ({aws_message})" if code in ("validationException", "modelStreamErrorException") and aws_message else ""
    lead = _IN_STREAM.get(code, f"Bedrock sent {code} while the answer was streaming")
    return StreamInterrupted(f"{lead}{detail}; the partial answer is kept. Retry or continue.", partial)


def api_error(code: str, aws_message: str, model: str, region: str, endpoint: str) -> ResponseStreamingError:
    """A Bedrock error response (error code + AWS's message) -> our error with a message a user can act on."""
    msg = aws_message or ""
    low = msg.lower()
    where = f" in {region}" if region else ""
    if code in ("ExpiredTokenException", "ExpiredToken") or "token included in the request is expired" in low:
        return AccessDenied("Your AWS credentials have expired: refresh them (e.g. `aws sso login`, or new "
                            "temporary keys) and try again.")
    if code in ("UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature",
                "InvalidClientTokenId", "SignatureDoesNotMatch"):
        return AccessDenied("AWS rejected your credentials (unknown access key or bad signature): check "
                            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or your AWS profile.")
    if code == "AccessDeniedException":
        if "don't have access to the model" in low or "do not have access to the model" in low:
            return AccessDenied(f"Your AWS account has no access to {model}{where}: grant it in the Bedrock console "
                                "(Model access), or choose another model.")
        return AccessDenied(f"AWS denied the call to {model or 'Bedrock'}{where}: your identity needs the "
                            f"bedrock:InvokeModelWithResponseStream permission for it. AWS said: {msg}")
    if code == "ResourceNotFoundException":
        retired = RETIRED.get(base_model_id(model)) if model else None
        if retired:
            return ModelNotFound(retired_message(model, retired))
        if "end of its life" in low or "end of life" in low or "legacy" in low:
            return ModelNotFound(f"The Bedrock model {model} has been retired. Choose a current model, "
                                 "e.g. amazon.nova-lite-v1:0.")
        return ModelNotFound(f"The model {model} is not offered{where}: check the id, or use a region where "
                             "Bedrock offers it (RS_AWS_REGION).")
    if code == "ValidationException":
        if "inference profile" in low or "on-demand throughput" in low:
            suggestion = profile_id_for(model, region)
            return ConfigError(f"{model} can only be called through a cross-region inference profile{where}: use "
                               f"--model {suggestion} (or RS_MODEL={suggestion}).")
        if "model identifier is invalid" in low or ("model id" in low and "invalid" in low):
            return ModelNotFound(f"Bedrock does not know the model id {model}{where}: check its spelling, and that "
                                 "Bedrock offers it in this region.")
        if "too long" in low or ("too many" in low and "token" in low) or ("context" in low and "exceed" in low):
            return BadRequest(f"The conversation is too long for {model}: start a new conversation or shorten "
                              "the prompt.")
        return BadRequest(f"Bedrock rejected the request: {msg}")
    if code in ("ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException",
                "ModelNotReadyException"):
        return Throttled(f"Bedrock is throttling requests to {model or 'the model'}{where}: wait a minute and try "
                         "again (or ask AWS for a higher quota).")
    if code == "ModelTimeoutException":
        return ProviderUnavailable(f"{model or 'The model'} took too long to answer: try again, or ask for a "
                                   "shorter answer.")
    if code in ("ServiceUnavailableException", "InternalServerException", "ModelErrorException",
                "ModelStreamErrorException", "InternalFailure", "ServiceUnavailable"):
        return ProviderUnavailable(f"Bedrock could not answer right now ({code}) at {endpoint or 'its endpoint'}: "
                                   "try again in a moment.")
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
    config = Config(read_timeout=settings.bedrock_read_timeout, connect_timeout=10,
                    retries={"mode": settings.bedrock_retry_mode, "total_max_attempts": settings.bedrock_max_attempts},
                    user_agent_extra="response-streaming")
    try:
        # botocore itself reads AWS_DEFAULT_REGION but not AWS_REGION, which the other AWS SDKs and the docs use.
        region = settings.aws_region or os.environ.get("AWS_REGION") or None
        session = boto3.Session(profile_name=settings.aws_profile or None, region_name=region)
        return session.client("bedrock-runtime", endpoint_url=settings.bedrock_endpoint_url or None, config=config)
    except bce.ProfileNotFound as err:
        raise ConfigError(f"The AWS profile {settings.aws_profile!r} does not exist: check RS_AWS_PROFILE / AWS_PROFILE "
                          "against ~/.aws/config.") from err
    except bce.NoRegionError as err:
        raise ConfigError("No AWS region is set: set RS_AWS_REGION or AWS_REGION (e.g. us-east-1), or a region "
                          "in your AWS profile.") from err


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
        self.family = family_of(self.model) or ""
        if self.api == "invoke" and not self.family:
            raise ConfigError(f"Cannot tell the native format of {self.model}: use RS_BEDROCK_API=converse, which "
                              "works for every model.")
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
                time.sleep(random.uniform(0, min(4.0, 0.5 * 2 ** attempt)))  # full jitter, as botocore does

    def _attempt(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        from botocore import exceptions as bce
        from botocore.eventstream import ParserError
        from urllib3 import exceptions as u3

        client = self.client
        region = client.meta.region_name or ""
        endpoint = client.meta.endpoint_url
        try:
            if self.api == "converse":
                resp = client.converse_stream(**converse_request(self.model, messages, params))
                raw = resp["stream"]
                events = converse_events(raw)
            else:
                body = invoke_body(self.family, messages, params)
                resp = client.invoke_model_with_response_stream(modelId=self.model, body=json.dumps(body),
                                                                contentType="application/json", accept="application/json")
                raw = resp["body"]
                events = native_events(self.family, (json.loads(e["chunk"]["bytes"]) for e in raw if "chunk" in e))
        except bce.ClientError as err:
            error = err.response.get("Error", {})
            raise api_error(error.get("Code", "Unknown"), error.get("Message", ""), self.model, region, endpoint) from err
        except bce.NoCredentialsError as err:
            raise AccessDenied("No AWS credentials found: run `aws configure` or `aws sso login`, set AWS_PROFILE "
                               "(or RS_AWS_PROFILE), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.") from err
        except (bce.TokenRetrievalError, bce.SSOTokenLoadError, bce.UnauthorizedSSOTokenError) as err:
            raise AccessDenied("Your AWS SSO session has expired: run `aws sso login` (with your --profile) and try "
                               "again.") from err
        except bce.NoRegionError as err:
            raise ConfigError("No AWS region is set: set RS_AWS_REGION or AWS_REGION (e.g. us-east-1).") from err
        except (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ConnectionClosedError) as err:
            raise ProviderUnavailable(f"Cannot reach Bedrock at {endpoint}: check your network, the region "
                                      "(RS_AWS_REGION) or RS_BEDROCK_ENDPOINT_URL.") from err
        except (bce.ReadTimeoutError, u3.ReadTimeoutError) as err:
            raise ProviderUnavailable(f"Bedrock at {endpoint} did not answer within "
                                      f"{self.settings.bedrock_read_timeout:g} s: try again.") from err
        except bce.ParamValidationError as err:  # botocore checks the request against the API model first
            detail = " ".join(str(err).split("\n")[1:3]).strip()
            raise BadRequest(f"Bedrock would reject these parameters: {detail}") from err
        except bce.BotoCoreError as err:
            raise ProviderUnavailable(f"The call to Bedrock at {endpoint} failed ({type(err).__name__}): try "
                                      "again.") from err

        pieces: list[str] = []
        try:
            for event in events:
                if isinstance(event, TextDelta):
                    pieces.append(event.text)
                yield event
        except bce.EventStreamError as err:
            error = err.response.get("Error", {})
            code = error.get("Code", "")
            mapped = in_stream_error(code, error.get("Message", ""), "".join(pieces), self.model, region, endpoint)
            if not pieces and code in _RETRY_IN_STREAM:
                raise _RetryBeforeText(mapped) from err
            raise mapped from err
        except ParserError as err:  # CRC mismatch, impossible lengths: the bytes were damaged
            raise StreamInterrupted("The Bedrock stream arrived damaged (an event-stream frame failed its "
                                    "checksum); the partial answer is kept. Retry.", "".join(pieces)) from err
        except (bce.ReadTimeoutError, u3.ReadTimeoutError) as err:
            raise StreamInterrupted(f"Bedrock sent nothing for {self.settings.bedrock_read_timeout:g} s, so the answer "
                                    "was cut off; the partial answer is kept. Retry.", "".join(pieces)) from err
        except (u3.ProtocolError, bce.ResponseStreamingError, ConnectionError) as err:
            raise StreamInterrupted("The connection to Bedrock broke mid-answer (the stream was truncated); the "
                                    "partial answer is kept. Retry.", "".join(pieces)) from err
        finally:
            raw.close()

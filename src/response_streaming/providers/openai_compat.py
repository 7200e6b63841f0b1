"""OpenAI-compatible chat completions over HTTP (Ollama, vLLM, llama.cpp's server, OpenAI itself), via httpx.

Pure parts: the request body, the chunk parser and the HTTP error mapping. `OpenAICompatProvider.stream`
is the only I/O and closes its response in `finally`. Server-sent events are decoded by `httpx-sse`
over httpx's *decoded* text: a proxy may gzip or deflate an event stream (httpx asks for both), and
reading the raw bytes would see only compressed noise. We ask for `stream_options.include_usage`;
servers that honour it send usage in a last chunk with no choices, others send none (the Recorder
then counts the pieces itself).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence

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
from ..events import Event, Finish, Message, Params, ReasoningDelta, StopReason, TextDelta, Usage
from ..reasoning import split_inline_reasoning

# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def chat_request(model: str, messages: Sequence[Message], params: Params) -> dict:
    """The JSON body of `POST {base}/chat/completions` with `stream: true`. Earlier answers go back
    without their reasoning: OpenAI-compatible servers neither need nor (mostly) accept it."""
    msgs = [{"role": "system", "content": params.system.strip()}] if params.system.strip() else []
    msgs += [{"role": m.role, "content": m.content} for m in messages if m.content.strip()]
    if not msgs or msgs[-1]["role"] != "user":
        raise BadRequest("The prompt is empty: type a question or some text to continue.")
    body: dict = {
        "model": model,
        "messages": msgs,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": params.max_tokens,
    }
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop:
        body["stop"] = list(params.stop)
    if params.reasoning:  # OpenAI, vLLM, Ollama and llama.cpp's server all read this name
        body["reasoning_effort"] = params.reasoning
    return body


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

_FINISH: dict[str, StopReason] = {
    "stop": "end_turn",
    "eos": "end_turn",
    "length": "max_tokens",
    "content_filter": "content_filtered",
}


def normalise_finish(reason: str | None) -> StopReason:
    """OpenAI's finish_reason (stop, length, content_filter, tool_calls, ...) in our words."""
    return _FINISH.get(reason or "", "other")


class StreamError(Exception):
    """The server put an error object inside the stream; `message` is the server's own text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def chat_events(payloads: Iterable[str]) -> Iterator[Event]:
    """SSE data payloads of a streamed chat completion -> our events.

    Text and reasoning at once; `Usage` (if the server sent it) and `Finish` when the stream ends, and only if a
    finish_reason or `[DONE]` came: otherwise the answer is incomplete. An `{"error": ...}` payload
    raises `StreamError`; a payload that is not JSON raises `ValueError`.
    """
    reason: str | None = None
    done = False
    usage: Usage | None = None
    for data in payloads:
        if data.strip() == "[DONE]":
            done = True
            break
        chunk = json.loads(data)
        if chunk.get("error"):
            raise StreamError(error_text(chunk))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            # DeepSeek, vLLM <= 0.10 and llama.cpp's server name the thinking `reasoning_content`; vLLM >= 0.11,
            # Ollama and OpenRouter `reasoning`. Either may come with `content: null`.
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                yield ReasoningDelta(thought)
            text = delta.get("content")
            if text:
                yield TextDelta(text)
            reason = choice.get("finish_reason") or reason
        if chunk.get("usage"):
            u = chunk["usage"]
            usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
    if reason is None and not done:
        return
    if usage is not None:
        yield usage
    yield Finish(normalise_finish(reason))


def error_text(body: object) -> str:
    """The human part of an error body.

    OpenAI's `{"error": {"message"}}`, `{"error": "..."}`, `{"detail"}` or `{"message"}`.
    """
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    return ""


def http_error(status: int, body: bytes, base_url: str, model: str, has_key: bool) -> ResponseStreamingError:
    """An HTTP error answer before the stream -> our error with a message a user can act on."""
    try:
        said = error_text(json.loads(body))
    except ValueError:
        said = body.decode("utf-8", errors="replace").strip()
    said = said[:300]
    low = said.lower()
    if status == 401:
        if has_key:
            return AccessDenied(f"The server at {base_url} refused the API key (HTTP 401): check RS_OPENAI_API_KEY.")
        return AccessDenied(f"The server at {base_url} wants an API key (HTTP 401): set RS_OPENAI_API_KEY.")
    if status == 403:
        return AccessDenied(
            f"The server at {base_url} does not allow this request (HTTP 403): check RS_OPENAI_API_KEY "
            f"and what it may use. The server said: {said or 'forbidden'}"
        )
    model_missing = "model" in low and ("not found" in low or "does not exist" in low or "no such" in low)
    if status == 404 or (status == 400 and model_missing):
        if "model" in low:
            return ModelNotFound(
                f"The server at {base_url} has no model {model!r} (HTTP {status}): pick one it lists at "
                f"{base_url}/models (RS_MODEL or --model), or pull it first (Ollama). "
                f"The server said: {said}"
            )
        return ConfigError(
            f"There is no chat completions endpoint at {base_url}/chat/completions (HTTP 404): check "
            "RS_OPENAI_BASE_URL; it usually ends in /v1."
        )
    if status in (400, 413, 422):
        if any(w in low for w in ("context length", "context window", "too long", "maximum context", "exceed")):
            return BadRequest(
                f"The conversation is too long for {model or 'the model'}: start a new conversation or "
                f"shorten the prompt. The server said: {said}"
            )
        return BadRequest(f"The server at {base_url} rejected the request (HTTP {status}): {said or 'bad request'}")
    if status == 429:
        return Throttled(f"The server at {base_url} is rate-limiting or busy (HTTP 429): wait a moment and try again.")
    if status >= 500:
        return ProviderUnavailable(
            f"The server at {base_url} failed (HTTP {status}): {said or 'no details'}. Try again, "
            "or check the server's log."
        )
    return ProviderUnavailable(f"The server at {base_url} answered HTTP {status}: {said or 'no details'}")


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------


class OpenAICompatProvider:
    name = "openai"
    continues_in_place = False

    def __init__(self, settings: Settings, client=None) -> None:
        try:
            import httpx
            import httpx_sse  # noqa: F401 - needed by stream(); missing, it should fail here, at start
        except ImportError as err:
            raise ConfigError(f"{err.name} is not installed: run `pip install 'response-streaming[openai]'`.") from err
        self.settings = settings
        self.base_url = settings.openai_base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"RS_OPENAI_BASE_URL must start with http:// or https:// (got {self.base_url!r}).")
        self.model = settings.model  # empty: the first model the server lists, found on first use
        key = settings.openai_api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # `read` is the gap allowed between two pieces of a stream, not the whole answer's time.
        timeout = httpx.Timeout(settings.openai_timeout, connect=10.0)
        self._client = client or httpx.Client(headers=headers, timeout=timeout)
        self._has_key = bool(key)
        self._lock = threading.Lock()

    def _model(self) -> str:
        with self._lock:
            if not self.model:
                self.model = self._first_listed_model()
            return self.model

    def _first_listed_model(self) -> str:
        import httpx

        url = f"{self.base_url}/models"
        try:
            resp = self._client.get(url)
        except httpx.HTTPError as err:
            raise ProviderUnavailable(
                f"Cannot connect to {self.base_url}: is the server running? (RS_OPENAI_BASE_URL)"
            ) from err
        if resp.status_code >= 400:
            raise http_error(resp.status_code, resp.content, self.base_url, "", self._has_key)
        try:
            models = [m["id"] for m in resp.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(f"{url} did not return a model list: set the model with RS_MODEL or --model.") from err
        if not models:
            raise ConfigError(f"The server at {self.base_url} lists no models: set one with RS_MODEL or --model.")
        return models[0]

    def stream(self, messages: Sequence[Message], params: Params) -> Iterator[Event]:
        import httpx
        import httpx_sse

        model = self._model()
        resp = self._send(chat_request(model, messages, params))
        shown = False  # text went out: an error from then on interrupts an answer
        try:
            if resp.status_code >= 400:
                raise http_error(resp.status_code, resp.read(), self.base_url, model, self._has_key)
            payloads = (sse.data for sse in httpx_sse.EventSource(resp).iter_sse())
            # Servers without a reasoning parser leave `<think>` tags in `content`: split them out too.
            for event in split_inline_reasoning(chat_events(payloads)):
                shown = shown or isinstance(event, (TextDelta, ReasoningDelta))
                yield event
            if not resp.num_bytes_downloaded:
                # llama-cpp-python's server answers 200 with an empty body when generation fails
                # before the first token (e.g. a prompt longer than its context window).
                raise ProviderUnavailable(
                    f"The server at {self.base_url} accepted the request but sent nothing back: "
                    "check its log (the prompt may be too long for its context window)."
                )
        except (httpx_sse.SSEError, StreamError, ValueError, httpx.HTTPError) as err:
            raise self._stream_error(err, shown, resp.headers.get("content-type")) from err
        finally:
            resp.close()

    def _send(self, body: dict):
        """POST the request and return the streaming response (its status not yet checked)."""
        import httpx

        request = self._client.build_request(
            "POST", f"{self.base_url}/chat/completions", json=body, headers={"Accept": "text/event-stream"}
        )
        try:
            return self._client.send(request, stream=True)
        except httpx.ConnectError as err:
            raise ProviderUnavailable(
                f"Cannot connect to {self.base_url}: is the server running? (RS_OPENAI_BASE_URL)"
            ) from err
        except httpx.TimeoutException as err:
            raise ProviderUnavailable(
                f"The server at {self.base_url} did not answer within "
                f"{self.settings.openai_timeout:g} s: try again, or raise RS_OPENAI_TIMEOUT."
            ) from err
        except httpx.HTTPError as err:
            raise ProviderUnavailable(
                f"The request to {self.base_url} failed ({type(err).__name__}): try again."
            ) from err

    def _stream_error(self, err: Exception, shown: bool, content_type: str | None) -> ResponseStreamingError:
        """What went wrong once the response started, in words a person can act on."""
        import httpx
        import httpx_sse

        base = self.base_url
        if isinstance(err, httpx_sse.SSEError):  # not an event stream at all (a proxy's HTML page, a wrong URL)
            return ProviderUnavailable(
                f"The server at {base} did not answer with an event stream "
                f"({content_type or 'no content type'}): check RS_OPENAI_BASE_URL."
            )
        if isinstance(err, StreamError):
            if not shown:
                return ProviderUnavailable(f"The server at {base} failed before answering: {err.message}")
            return StreamInterrupted(
                f"The server reported an error mid-answer ({err.message}); the partial answer is "
                "kept. Retry or continue."
            )
        if isinstance(err, ValueError):  # a data line that is not JSON
            return StreamInterrupted(
                f"The server at {base} sent a garbled stream (not JSON); the partial answer is kept."
            )
        if isinstance(err, httpx.TimeoutException):
            return StreamInterrupted(
                f"The server at {base} sent nothing for {self.settings.openai_timeout:g} s, so the "
                "answer was cut off; the partial answer is kept."
            )
        # RemoteProtocolError, ReadError: the connection broke
        return StreamInterrupted(
            f"The connection to {base} broke mid-answer; the partial answer is kept. Retry or continue."
        )

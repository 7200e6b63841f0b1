"""Bedrock runtime-compatible endpoints: `POST /model/{modelId}/converse`, `/converse-stream`,
`/invoke` and `/invoke-with-response-stream`, so boto3 (and anything built on it) works unchanged
with `endpoint_url` pointed here.

The request side (Converse JSON; each family's native InvokeModel body) is translated here by pure
functions; every byte of the answer comes from `wire.bedrock`'s encoders. The model id picks the
*format* (for invoke, its family's native JSON); the configured provider always answers.
Credentials and signatures are not checked: this server is for loopback and trusted networks.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import BadRequest, MethodNotAllowed, RequestTooLarge, ResponseStreamingError
from ..events import Message, Params
from ..providers.bedrock_catalog import family_of
from ..recorder import Recorder
from ..wire import bedrock as wire
from .generation import Generation, GenerationResponse, failure
from .http import read_json

# ----------------------------------------------------------------------------------------------
# Request side: pure translation
# ----------------------------------------------------------------------------------------------


def _num(value, name: str, lo: float, hi: float, integer: bool = False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'}.")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo:g} and {hi:g}, not {value}.")
    return value


def _stops(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BadRequest(f"{name} must be a list of strings.")
    return tuple(s for s in value if s)


def _params(default: Params, max_tokens, temperature, top_p, stop: tuple[str, ...], system: str, prefix: str) -> Params:
    return Params(
        max_tokens=_num(max_tokens, f"{prefix}max tokens", 1, 1 << 20, integer=True) or default.max_tokens,
        temperature=default.temperature if temperature is None else float(_num(temperature, f"{prefix}temperature", 0, 2)),
        top_p=default.top_p if top_p is None else float(_num(top_p, f"{prefix}top_p", 0, 1)),
        stop=stop, system=system or default.system)


def _check_turns(messages: list[Message]) -> list[Message]:
    if not messages or messages[-1].role != "user" or not messages[-1].content.strip():
        raise BadRequest("The last message must be a non-empty user message.")
    return messages


def _blocks_text(blocks, where: str) -> str:
    """Converse content blocks: text is served; cache points are hints and are skipped."""
    if not isinstance(blocks, list):
        raise BadRequest(f"{where} must be a list of content blocks.")
    texts = []
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block, dict) and "cachePoint" in block:
            continue
        else:
            kind = next(iter(block), "?") if isinstance(block, dict) and block else type(block).__name__
            raise BadRequest(f"{where}[{i}]: only text content is supported, not {kind!r}.")
    return "".join(texts)


def _turns(raw, text_of) -> list[Message]:
    """A `messages` list of {role, content} (Converse and Anthropic alike); `text_of` reads one content."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list.")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}].role must be 'user' or 'assistant'.")
        messages.append(Message(m["role"], text_of(m.get("content"), f"messages[{i}].content")))
    return messages


def parse_converse(body, default: Params) -> tuple[list[Message], Params]:
    """A Converse / ConverseStream body -> (messages, params)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    if body.get("toolConfig"):
        raise BadRequest("toolConfig is not supported by this server: tool use is not available.")
    messages = _turns(body.get("messages"), _blocks_text)
    system = _blocks_text(body.get("system") or [], "system")
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise BadRequest("inferenceConfig must be an object.")
    params = _params(default, config.get("maxTokens"), config.get("temperature"), config.get("topP"),
                     _stops(config.get("stopSequences"), "inferenceConfig.stopSequences"), system, "inferenceConfig.")
    return _check_turns(messages), params


_LLAMA3 = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>(.*?)(?=<\|eot_id\|>|<\|start_header_id\|>|$)", re.S)
_INST = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(?=\[INST\]|$)", re.S)
_SYS = re.compile(r"<<SYS>>(.*?)<</SYS>>", re.S)


def prompt_to_messages(prompt: str) -> tuple[list[Message], str]:
    """A raw prompt (Llama 3 headers, Llama 2 / Mistral `[INST]`, or plain text) -> (messages, system).

    Templated prompts are turned back into turns, because our providers apply their own format;
    plain text is one user message.
    """
    if "<|start_header_id|>" in prompt:
        turns = [(role, text.strip()) for role, text in _LLAMA3.findall(prompt)]
        system = "\n\n".join(t for r, t in turns if r == "system")
        messages = [Message(r, t) for r, t in turns if r in ("user", "assistant") and t]
        return messages, system
    if "[INST]" in prompt:
        messages, system = [], ""
        for user, answer in _INST.findall(prompt):
            if (found := _SYS.search(user)) is not None:
                system = found.group(1).strip()
                user = _SYS.sub("", user)
            messages.append(Message("user", user.strip()))
            answer = answer.replace("</s>", "").replace("<s>", "").strip()
            if answer:
                messages.append(Message("assistant", answer))
        return messages, system
    return [Message("user", prompt.replace("<s>", "").strip())], ""


def _anthropic_text(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of content blocks.")
    texts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise BadRequest(f"{where}[{i}]: only text blocks are supported, not {kind!r}.")
        texts.append(block["text"])
    return "".join(texts)


def parse_invoke(family: str | None, model_id: str, body, default: Params) -> tuple[list[Message], Params]:
    """A family's native InvokeModel body -> (messages, params)."""
    if family is None:
        raise BadRequest(f"Unknown model family for {model_id!r}: invoke understands the native bodies of "
                         f"{', '.join(wire.FAMILIES)} model ids (e.g. amazon.nova-lite-v1:0). Converse works with any id.")
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    if family == "nova":
        return parse_converse_like_nova(body, default)
    if family == "anthropic":
        messages = _turns(body.get("messages"), _anthropic_text)
        if body.get("max_tokens") is None:
            raise BadRequest("max_tokens is required in an Anthropic messages body.")
        system = _anthropic_text(body.get("system") or "", "system")
        return _check_turns(messages), _params(default, body.get("max_tokens"), body.get("temperature"),
                                               body.get("top_p"), _stops(body.get("stop_sequences"), "stop_sequences"),
                                               system, "")
    if family == "titan":
        text, config = body.get("inputText"), body.get("textGenerationConfig") or {}
        if not isinstance(text, str) or not isinstance(config, dict):
            raise BadRequest("A Titan body needs inputText (a string) and optionally textGenerationConfig (an object).")
        messages, system = prompt_to_messages(text)
        return _check_turns(messages), _params(default, config.get("maxTokenCount"), config.get("temperature"),
                                               config.get("topP"), _stops(config.get("stopSequences"), "stopSequences"),
                                               system, "textGenerationConfig.")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest(f"A {family} body needs a prompt string.")
    messages, system = prompt_to_messages(prompt)
    if family == "meta":
        return _check_turns(messages), _params(default, body.get("max_gen_len"), body.get("temperature"),
                                               body.get("top_p"), (), system, "")
    if family == "mistral":
        return _check_turns(messages), _params(default, body.get("max_tokens"), body.get("temperature"),
                                               body.get("top_p"), _stops(body.get("stop"), "stop"), system, "")
    return _check_turns(messages), _params(default, body.get("max_tokens"), body.get("temperature"),  # cohere
                                           body.get("p"), _stops(body.get("stop_sequences"), "stop_sequences"),
                                           system, "")


def parse_converse_like_nova(body: dict, default: Params) -> tuple[list[Message], Params]:
    """Nova's native body is Converse's, with snake_case inference names allowed."""
    config = dict(body.get("inferenceConfig") or {})
    if not isinstance(body.get("inferenceConfig") or {}, dict):
        raise BadRequest("inferenceConfig must be an object.")
    for native, converse in (("max_new_tokens", "maxTokens"), ("top_p", "topP")):
        if native in config:
            config[converse] = config.pop(native)
    return parse_converse({**body, "inferenceConfig": config}, default)


# ----------------------------------------------------------------------------------------------
# Answer side: frames from wire.bedrock
# ----------------------------------------------------------------------------------------------


def error_response(err: BaseException) -> Response:
    status, headers, body = wire.error_response_for(err)
    if isinstance(err, (MethodNotAllowed, RequestTooLarge)):  # not Bedrock's own errors: keep the HTTP meaning
        status = err.status
    return Response(body, status_code=status, headers=headers)


def _usage(rec: Recorder) -> tuple[int, int]:
    return rec.metrics.input_tokens or 0, rec.metrics.output_tokens or 0


class ConverseWire:
    media_type = wire.EVENTSTREAM_CONTENT_TYPE
    headers: Mapping[str, str] = {}

    def error_response(self, err: ResponseStreamingError) -> Response:
        return error_response(err)

    def start(self) -> bytes:
        return wire.converse_message_start()

    def piece(self, text: str) -> bytes:
        return wire.converse_content_delta(text) if text else b""

    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes:
        if err is not None:
            return wire.stream_exception_frame(err)
        i, o = _usage(rec)
        return (wire.converse_content_stop() + wire.converse_message_stop(rec.metrics.stop_reason or "end_turn")
                + wire.converse_metadata(i, o, rec.metrics.duration_ms))

    def whole(self, rec: Recorder) -> Response:
        if (err := failure(rec)) is not None:
            return error_response(err)
        i, o = _usage(rec)
        return JSONResponse(wire.converse_response(rec.text, rec.metrics.stop_reason or "end_turn", i, o,
                                                   rec.metrics.duration_ms))


class InvokeWire:
    media_type = wire.EVENTSTREAM_CONTENT_TYPE

    def __init__(self, family: str, model_id: str) -> None:
        self.family, self.model_id = family, model_id
        self.n = 0
        # The native JSON's content type, as Bedrock names it (boto3's `contentType`).
        self.headers: Mapping[str, str] = {"x-amzn-bedrock-content-type": "application/json"}

    def error_response(self, err: ResponseStreamingError) -> Response:
        return error_response(err)

    def start(self) -> bytes:
        return b"".join(wire.chunk_frame(c) for c in wire.native_head_chunks(self.family, self.model_id))

    def piece(self, text: str) -> bytes:
        if not text:
            return b""
        self.n += 1
        return wire.chunk_frame(wire.native_text_chunk(self.family, text, index=self.n - 1))

    def end(self, rec: Recorder, err: ResponseStreamingError | None) -> bytes:
        if err is not None:
            return wire.stream_exception_frame(err)
        m, (i, o) = rec.metrics, _usage(rec)
        metrics = wire.invocation_metrics(i, o, m.duration_ms, m.ttft_ms if m.ttft_ms is not None else m.duration_ms)
        tail = wire.native_tail_chunks(self.family, m.stop_reason or "end_turn", i, o, metrics)
        return b"".join(wire.chunk_frame(c) for c in tail)

    def whole(self, rec: Recorder) -> Response:
        if (err := failure(rec)) is not None:
            return error_response(err)
        i, o = _usage(rec)
        body = wire.native_response(self.family, rec.text, rec.metrics.stop_reason or "end_turn", i, o, self.model_id)
        # InvokeModel reports usage and latency in headers too; boto3 exposes them in ResponseMetadata.
        return JSONResponse(body, headers={"x-amzn-bedrock-input-token-count": str(i),
                                           "x-amzn-bedrock-output-token-count": str(o),
                                           "x-amzn-bedrock-invocation-latency": str(rec.metrics.duration_ms)})


def router(state) -> APIRouter:
    api = APIRouter()

    def respond(request: Request, messages, params, wire_, stream: bool) -> Response:
        gen = Generation(state.provider, messages, params, state.generations)
        return GenerationResponse(gen, wire_, stream, {"api": "bedrock", "path": request.url.path})

    # `:path` because an ARN model id contains "/" once boto3's percent-encoding is decoded.
    @api.post("/model/{model_id:path}/converse-stream")
    async def converse_stream(request: Request, model_id: str) -> Response:
        messages, params = parse_converse(await read_json(request), state.settings.default_params())
        return respond(request, messages, params, ConverseWire(), True)

    @api.post("/model/{model_id:path}/converse")
    async def converse(request: Request, model_id: str) -> Response:
        messages, params = parse_converse(await read_json(request), state.settings.default_params())
        return respond(request, messages, params, ConverseWire(), False)

    @api.post("/model/{model_id:path}/invoke-with-response-stream")
    async def invoke_stream(request: Request, model_id: str) -> Response:
        family = family_of(model_id)
        messages, params = parse_invoke(family, model_id, await read_json(request), state.settings.default_params())
        return respond(request, messages, params, InvokeWire(family, model_id), True)

    @api.post("/model/{model_id:path}/invoke")
    async def invoke(request: Request, model_id: str) -> Response:
        family = family_of(model_id)
        messages, params = parse_invoke(family, model_id, await read_json(request), state.settings.default_params())
        return respond(request, messages, params, InvokeWire(family, model_id), False)

    return api

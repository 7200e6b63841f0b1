"""Request checks shared by every route (OpenAI, Bedrock, our SSE): JSON, numbers, the message list, and
the limits that bound the work one request can cause.

Each route's parser reads its own API's field names and hands the values to these functions, which
raise `BadRequest` with a message naming the field (and, for a limit, the setting that raises it).
Everything here runs before the provider sees the request, so before any tokenization.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import BadRequest
from ..events import Message, Params

JSON_DEPTH = 64  # real chat bodies nest 5-6 levels; deeper is an attack on the parser, not a request


@dataclass(frozen=True)
class Limits:
    """The per-request bounds, read once from the settings (see config.py for each)."""

    max_messages: int = 1000
    max_input_chars: int = 200_000
    max_stop_sequences: int = 16
    max_stop_length: int = 100
    max_output_tokens: int = 8192

    @classmethod
    def from_settings(cls, settings: Settings, provider_name: str = "") -> Limits:
        cap = settings.max_output_tokens
        if provider_name == "local":  # the embedded model can't write more than its context holds
            cap = min(cap, settings.n_ctx)
        return cls(
            settings.max_messages, settings.max_input_chars, settings.max_stop_sequences, settings.max_stop_length, cap
        )


DEFAULT_LIMITS = Limits()  # the settings' defaults, for callers without settings (parsers' tests)


def parse_json(raw: bytes) -> Any:
    """A body as JSON, or `BadRequest` saying why not (deep nesting included: never a RecursionError)."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"The request body is nested deeper than {JSON_DEPTH} levels.") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRequest(f"The request body is not valid JSON ({err}).") from None
    _check_depth(body)
    return body


def _check_depth(body: Any) -> None:
    # Iterative, so a body just under the parser's own recursion limit can't trip ours.
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > JSON_DEPTH:
            raise BadRequest(f"The request body is nested deeper than {JSON_DEPTH} levels.")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def require_object(value: Any, name: str = "The request body") -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object.")
    return value


def number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> Any:
    """`value` if it is a number (an integer if `integer`) in [lo, hi]; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'}.")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo:g} and {hi:g}, not {value}.")
    return value


def message_list(raw: Any, name: str, limits: Limits) -> list:
    """A non-empty JSON list of at most `max_messages` items (the items are the route's to read)."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest(f"{name} must be a non-empty list of {{role, content}} objects.")
    if len(raw) > limits.max_messages:
        raise BadRequest(
            f"{name} has {len(raw)} messages; at most {limits.max_messages} are allowed (setting RS_MAX_MESSAGES)."
        )
    return raw


def stop_list(value: Any, name: str, limits: Limits, allow_string: bool = False) -> tuple[str, ...]:
    """Stop sequences: a list of strings (or one string if `allow_string`), bounded in number and length."""
    if value is None:
        return ()
    if allow_string and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BadRequest(f"{name} must be a list of strings.")
    if len(value) > limits.max_stop_sequences:
        raise BadRequest(
            f"{name} has {len(value)} stop sequences; at most {limits.max_stop_sequences} are allowed "
            "(setting RS_MAX_STOP_SEQUENCES)."
        )
    if any(len(s) > limits.max_stop_length for s in value):
        raise BadRequest(
            f"{name}: a stop sequence is longer than {limits.max_stop_length} characters (setting RS_MAX_STOP_LENGTH)."
        )
    return tuple(s for s in value if s)


def make_params(
    default: Params,
    limits: Limits,
    *,
    max_tokens: Any = None,
    temperature: Any = None,
    top_p: Any = None,
    stop: tuple[str, ...] = (),
    system: str = "",
    names: dict | None = None,
    reasoning: str | None = None,
) -> Params:
    """Params from a request's values (None: the server's default). `names` maps our field names to the
    API's, for the messages. `max_tokens` is capped, not refused: clients often ask for more than a
    model can write, and a shorter answer marked `max_tokens`/`length` is what real APIs give them."""
    names = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", **(names or {})}
    asked = number(max_tokens, names["max_tokens"], 1, 1 << 30, integer=True)
    temperature = number(temperature, names["temperature"], 0, 2)
    top_p = number(top_p, names["top_p"], 0, 1)
    return Params(
        max_tokens=min(asked or default.max_tokens, limits.max_output_tokens),
        temperature=default.temperature if temperature is None else float(temperature),
        top_p=default.top_p if top_p is None else float(top_p),
        stop=stop,
        system=system or default.system,
        reasoning=default.reasoning if reasoning is None else reasoning,  # an effort, checked where it was read
    )


def check_conversation(messages: Sequence[Message], params: Params, limits: Limits) -> list[Message]:
    """The checks every route ends with: the turn order a model can answer, and the input size bound
    (characters, counted before anything is tokenized)."""
    if not messages or messages[-1].role != "user" or not messages[-1].content.strip():
        raise BadRequest("The last message must be a non-empty 'user' message.")
    if len(messages) > limits.max_messages:  # a route may build turns from one prompt string
        raise BadRequest(
            f"The request has {len(messages)} messages; at most {limits.max_messages} are allowed "
            "(setting RS_MAX_MESSAGES)."
        )
    chars = sum(len(m.content) for m in messages) + len(params.system)
    if chars > limits.max_input_chars:
        raise BadRequest(
            f"The request has {chars} characters of input; at most {limits.max_input_chars} are "
            "allowed (setting RS_MAX_INPUT_CHARS)."
        )
    return list(messages)

"""Who may call `serve`: the Host and Origin checks, CORS for listed origins, JSON-only bodies, API keys.

Why each check (issue 10, DESIGN.md "Security facts"):
- Host: a page that rebinds its DNS name to 127.0.0.1 reaches a loopback server under its own name,
  and could read the answers. Bound to loopback, only loopback names are served (Ollama's fix for
  CVE-2024-28224); otherwise only the names in RS_ALLOWED_HOSTS.
- Origin: any web page can POST to a loopback server. Browsers always say where a page is from, and
  no page of ours calls this server, so a request with an Origin is refused unless that origin is
  listed in RS_ALLOWED_ORIGINS. Only listed origins get CORS headers and preflight answers.
- Content type: a "simple" cross-origin request (text/plain, a form) needs no preflight; requiring
  application/json makes every body a page could send without asking first a 415.
- Keys: `Authorization: Bearer <key>` (RS_API_KEYS) for the OpenAI API, ours, and Bedrock clients on
  TLS; an AWS SigV4 signature made with a configured key pair (RS_AWS_ACCESS_KEYS) for Bedrock
  clients on plain HTTP, because boto3 sends Bearer tokens to https:// endpoints only.
Every refusal is rendered by `render(path, err)` in the API's own error shape.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from starlette.responses import Response

from ..config import Settings
from ..errors import AccessDenied, ResponseStreamingError, Unauthorized, UnsupportedMediaType
from .sigv4 import SigV4Keys

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})
OPEN_PATHS = frozenset({"/health"})  # liveness probes need no key (Host and Origin still apply)
CORS_METHODS = "GET, POST, OPTIONS"


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without the port (IPv6 literals keep no brackets)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class AccessPolicy:
    """The settings of these checks, read once."""

    def __init__(self, settings: Settings, bind_host: str = "127.0.0.1") -> None:
        listed = [h.lower() for h in split_list(settings.allowed_hosts)]
        self.any_host = "*" in listed
        # Bound to loopback, the loopback names always work; the listed names add to them.
        self.hosts = frozenset(listed) | (LOOPBACK_NAMES if is_loopback(bind_host) else frozenset())
        if bind_host not in WILDCARDS:  # an address clients type as-is: no DNS name to rebind
            self.hosts |= {bind_host.strip("[]").lower()}
        origins = split_list(settings.allowed_origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)
        self.keys = [k.encode() for k in split_list(settings.api_keys.get_secret_value())]
        self.aws = SigV4Keys.parse(settings.aws_access_keys.get_secret_value())

    @property
    def needs_key(self) -> bool:
        return bool(self.keys) or bool(self.aws)

    def host_ok(self, host: str) -> bool:
        return self.any_host or host_name(host) in self.hosts

    def origin_ok(self, origin: str) -> bool:
        return self.any_origin or origin.rstrip("/").lower() in self.origins

    def bearer_ok(self, token: str) -> bool:
        # Every key is compared, in constant time each, so the time taken says nothing about which matched.
        found = False
        for key in self.keys:
            found |= hmac.compare_digest(key, token.encode())
        return found


class Access:
    """ASGI middleware applying `AccessPolicy` before any route runs."""

    def __init__(self, app, policy: AccessPolicy, render: Callable[[str, ResponseStreamingError], Response]) -> None:
        self.app, self.policy, self.render = app, policy, render

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path, method, origin = scope.get("path", ""), scope.get("method", ""), headers.get("origin")
        p = self.policy
        if not p.host_ok(headers.get("host", "")):
            return await self.refuse(
                scope,
                receive,
                send,
                AccessDenied("This server does not answer to that Host name; add it to RS_ALLOWED_HOSTS."),
            )
        if origin is not None and not p.origin_ok(origin):
            return await self.refuse(
                scope,
                receive,
                send,
                AccessDenied(
                    "Requests from web pages of this origin are refused; add it to RS_ALLOWED_ORIGINS to allow it."
                ),
            )
        if origin is not None and method == "OPTIONS" and "access-control-request-method" in headers:
            return await self.preflight(scope, receive, send, origin, headers)
        if method in BODY_METHODS and not json_body(path, headers.get("content-type")):
            return await self.refuse(
                scope,
                receive,
                send,
                UnsupportedMediaType("Request bodies must be JSON, sent with Content-Type: application/json."),
                origin,
            )
        if p.needs_key and path not in OPEN_PATHS:
            denied, receive = await self.check_key(scope, receive, headers)
            if denied is not None:
                return await self.refuse(scope, receive, send, denied, origin)
        await self.app(scope, receive, with_cors(send, origin))

    async def check_key(self, scope, receive, headers: dict[str, str]):
        """(None, receive) if the request carries a valid key, else (the error, receive). A SigV4
        signature covers the body, so that check reads it first and hands on a `receive` replaying it."""
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip() and self.policy.bearer_ok(value.strip()):
            return None, receive
        if scheme == "AWS4-HMAC-SHA256" and self.policy.aws:
            body, receive = await read_body(receive)
            problem = self.policy.aws.verify(scope, headers, body)
            return (None if problem is None else Unauthorized(problem)), receive
        if not auth:
            return Unauthorized(
                "An API key is required: send 'Authorization: Bearer <key>' (see the README, \"Security\")."
            ), receive
        return Unauthorized("The API key is not valid."), receive

    async def refuse(self, scope, receive, send, err: ResponseStreamingError, origin: str | None = None) -> None:
        scope["rs.error"] = type(err).__name__
        await self.render(scope.get("path", ""), err)(scope, receive, with_cors(send, origin))

    async def preflight(self, scope, receive, send, origin: str, headers: dict[str, str]) -> None:
        allow = [
            (b"access-control-allow-methods", CORS_METHODS.encode()),
            (b"access-control-allow-headers", headers.get("access-control-request-headers", "").encode()),
            (b"access-control-max-age", b"600"),
        ]
        await Response(status_code=204, headers={k.decode(): v.decode() for k, v in allow})(
            scope, receive, with_cors(send, origin)
        )


def json_body(path: str, content_type: str | None) -> bool:
    """Is the body declared as JSON? InvokeModel bodies are JSON unless said otherwise, and the AWS SDKs
    send them with no Content-Type (boto3) or as application/octet-stream (JavaScript), so on Bedrock
    routes those count too. Neither is a type a page can send without a preflight."""
    kind = "" if content_type is None else content_type.split(";", 1)[0].strip().lower()
    if path.startswith("/model/") and kind in ("", "application/octet-stream"):
        return True
    return kind == "application/json"


def with_cors(send, origin: str | None):
    """`send` adding CORS headers for `origin` (already checked to be listed) to the response start."""
    if origin is None:
        return send

    async def cors_send(message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin"),
                ],
            }
        await send(message)

    return cors_send


async def read_body(receive) -> tuple[bytes, Callable]:
    """The whole body, and a `receive` that hands it on to the route, then behaves as before."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body, replayed = b"".join(chunks), False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay

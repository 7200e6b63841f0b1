"""The FastAPI app: every API's routes, one provider behind them, errors in each API's own shape."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ..config import Settings, get_settings
from ..errors import BadRequest, MethodNotAllowed, ModelNotFound, ResponseStreamingError
from ..events import Provider
from ..generation import Generations, save_on_sigterm
from . import bedrock_api, events_api, openai_api
from .access import Access, AccessPolicy
from .generation import _fmt
from .http import MAX_REQUEST_BYTES, Guard, api_of
from .upstream import bound
from .validate import Limits

log = logging.getLogger("response_streaming.server")

RENDERERS: dict[str, Callable[[Exception], Response]] = {
    "openai": openai_api.error_response,
    "bedrock": bedrock_api.error_response,
    "events": events_api.error_response,
}


def render_error(path: str, err: Exception) -> Response:
    return RENDERERS[api_of(path)](err)


def create_app(
    settings: Settings | None = None,
    provider: Provider | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    bind_host: str = "127.0.0.1",
    gens: Generations | None = None,
) -> FastAPI:
    """The app for `settings` (default: the environment's), answering with `provider` (default: the
    one the settings name, loaded now so that a bad model file fails at start, not at first request).
    `bind_host` is the address the server listens on: bound to loopback, loopback Host names are served.
    `gens`: the durable generations `/v1/stream` runs (default: on the settings' database, opened at
    its first use and closed, saving running ones as interrupted, when the app shuts down)."""
    settings = settings or get_settings()
    if provider is None:
        from ..providers import make_provider

        provider = make_provider(settings)
    policy = AccessPolicy(settings, bind_host)
    state = SimpleNamespace(
        settings=settings,
        provider=bound(provider, settings.max_upstream_streams),
        generations=set(),
        limits=Limits.from_settings(settings, provider.name),
        policy=policy,
        gens=_LazyGenerations(settings, gens),
    )

    # No /docs or /openapi.json: the routes read raw bodies, so the generated schema would say nothing.
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # A server process (serve's workers): on SIGTERM save running generations first, so the streams
        # following them end and the server's graceful shutdown is not held up by them.
        save_on_sigterm(state.gens.close)
        yield
        state.gens.close()

    app = FastAPI(title="response-streaming", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.rs = state
    app.include_router(openai_api.router(state))
    app.include_router(bedrock_api.router(state))
    app.include_router(events_api.router(state))

    @app.get("/health")
    async def health() -> JSONResponse:
        # `generations`: requests streaming or waiting for the model right now, durable ones included.
        running = len(state.generations) + state.gens.running()
        return JSONResponse(
            {"status": "ok", "provider": provider.name, "model": provider.model, "generations": running}
        )

    @app.exception_handler(ResponseStreamingError)
    async def our_error(request: Request, err: ResponseStreamingError) -> Response:
        request.scope["rs.error"] = type(err).__name__
        return render_error(request.url.path, err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        # Unknown paths and wrong methods, said in the caller's API's words.
        request.scope["rs.error"] = f"HTTP{err.status_code}"
        mapped: ResponseStreamingError
        if err.status_code == 404:
            mapped = ModelNotFound(f"No such endpoint: {request.method} {request.url.path}.")
        elif err.status_code == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
        else:
            mapped = BadRequest(str(err.detail))
        return render_error(request.url.path, mapped)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        log.exception("unexpected error on %s", _fmt(request.url.path))
        request.scope["rs.error"] = "internal"
        return render_error(request.url.path, err)

    # Added last = outermost: Guard bounds the body and logs every request, refused ones included.
    app.add_middleware(Access, policy=policy, render=render_error)
    app.add_middleware(Guard, max_bytes=max_request_bytes, render=render_error, body_timeout=settings.body_timeout)
    return app


class _LazyGenerations:
    """`state.gens()`: the app's `Generations`, opened at first use, so an app that never serves
    `/v1/stream` opens no database. One given to `create_app` is the caller's to close."""

    def __init__(self, settings: Settings, given: Generations | None) -> None:
        self.settings, self.value, self.own = settings, given, given is None
        self.lock = threading.Lock()

    def __call__(self) -> Generations:
        with self.lock:
            if self.value is None:
                from ..store import Store

                self.value = Generations(Store(self.settings.sqlalchemy_url), self.settings)
            return self.value

    def running(self) -> int:
        return len(self.value.jobs()) if self.value is not None else 0

    def close(self) -> None:
        if self.own and self.value is not None:
            self.value.close()

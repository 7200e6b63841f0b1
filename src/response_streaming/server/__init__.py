"""`response-streaming serve`: one HTTP server speaking OpenAI's chat completions, Bedrock runtime's
wire and our own SSE, all backed by the configured provider (the embedded model by default).

Routes: POST /v1/chat/completions, GET /v1/models (OpenAI); POST /model/{modelId}/converse,
/converse-stream, /invoke, /invoke-with-response-stream (Bedrock runtime); POST /v1/stream (our
events as SSE, a durable generation), GET /v1/stream/{id} (re-attach), POST /v1/stream/{id}/stop;
GET /health.
"""

from __future__ import annotations

import logging
import os

from ..config import Settings
from ..errors import ConfigError
from .app import create_app

__all__ = ["check_exposure", "create_app", "serve"]


def check_exposure(settings: Settings, host: str, allow_no_keys: bool = False) -> str | None:
    """Refuse (ConfigError, saying how to fix it) to listen on a non-loopback `host` without API keys,
    unless `allow_no_keys`: then the warning to log. On every address, RS_ALLOWED_HOSTS must say which
    Host names clients use, or every request would be refused."""
    from .access import WILDCARDS, is_loopback, split_list

    if is_loopback(host):
        return None
    warning = None
    if not (settings.api_keys.get_secret_value() or settings.aws_access_keys.get_secret_value()):
        if not allow_no_keys:
            raise ConfigError(
                f"--host {host} lets other machines call this server, and no API key is set. Set RS_API_KEYS (and "
                'RS_AWS_ACCESS_KEYS for Bedrock clients on plain HTTP; see README "Security"), or pass '
                "--allow-no-keys if every machine that can reach it may use it."
            )
        warning = f"serving on {host} without API keys (--allow-no-keys): anyone who can reach it can use it"
    if host in WILDCARDS and not split_list(settings.allowed_hosts):
        raise ConfigError(
            f"--host {host} listens on every address, so the Host names clients use can't be known: "
            "set RS_ALLOWED_HOSTS to them (e.g. RS_ALLOWED_HOSTS=llm.example.com,10.0.0.5), or '*'."
        )
    return warning


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_no_keys: bool = False,
    certfile: str | None = None,
    keyfile: str | None = None,
    workers: int | None = None,
    server: str = "granian",
) -> None:
    """Run the server until interrupted. `workers` (default: one per core) processes each serve the app;
    the embedded model is one per process, so with it there is one worker (see README "Serve")."""
    from .run import configure_logging, run

    configure_logging()
    log = logging.getLogger("response_streaming.server")
    if warning := check_exposure(settings, host, allow_no_keys):
        log.warning(warning)
    if bool(certfile) != bool(keyfile):
        raise ConfigError("HTTPS needs both --ssl-certfile and --ssl-keyfile.")
    workers = workers_for(settings, workers)
    if settings.provider != "local" and (workers > 1 or server != "granian"):
        create_app(settings, bind_host=host)  # cheap to build: a bad setting fails here, before any worker starts
    scheme = "https" if certfile else "http"
    log.info(
        "serving provider=%s model=%s on %s://%s:%d (%s, %d worker%s)",
        settings.provider,
        settings.model or "default",
        scheme,
        host,
        port,
        server,
        workers,
        "s" if workers > 1 else "",
    )
    run(server, settings, host, port, workers, certfile, keyfile)


def workers_for(settings: Settings, asked: int | None) -> int:
    """One per core by default. The embedded model: one worker, because a second process would hold a
    second copy of the model and split the batches the engine forms across requests."""
    if settings.provider == "local":
        if asked not in (None, 1):
            raise ConfigError(
                "--workers must be 1 with the embedded model: one process holds the model and batches "
                "every request; use a remote or replay provider to serve from several processes."
            )
        return 1
    return asked or os.cpu_count() or 1

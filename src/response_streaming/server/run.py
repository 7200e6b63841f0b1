"""Starting the HTTP server: granian by default (HTTP/1.1, h2c with prior knowledge, h2 over TLS by
ALPN; several worker processes), or uvicorn / hypercorn for comparison (bench/server.py).

With one worker, granian runs in this process around the app built here (so the embedded model is
loaded once, before the port opens, and a bad setting is one error line). With more, workers are
processes, each with its own app built from the environment (`asgi.make_app`), so the settings
`serve` was given are exported first. Why granian: bench/README.md ("Server").
"""

from __future__ import annotations

import logging
import os

from ..config import Settings
from .asgi import BIND_HOST_ENV, LOG_FORMAT

SERVERS = ("granian", "hypercorn", "uvicorn")
FACTORY = "response_streaming.server.asgi:make_app"


def export_settings(settings: Settings, host: str) -> None:
    """Workers read RS_* from the environment: make it say what this process was told (CLI flags included)."""
    os.environ["RS_PROVIDER"] = settings.provider
    if settings.model:
        os.environ["RS_MODEL"] = settings.model
    os.environ[BIND_HOST_ENV] = host


def run(
    server: str, settings: Settings, host: str, port: int, workers: int, certfile: str | None, keyfile: str | None
) -> None:
    export_settings(settings, host)
    if server == "granian" and workers == 1:
        # One process: the app (and its provider, e.g. the embedded model) is built here, before the
        # port opens, so a bad setting is one clean error line instead of a worker's traceback.
        from .app import create_app

        _granian_in_process(create_app(settings, bind_host=host), settings, host, port, certfile, keyfile)
    elif server == "granian":
        _granian(settings, host, port, workers, certfile, keyfile)
    elif server == "hypercorn":
        _hypercorn(settings, host, port, workers, certfile, keyfile)
    else:
        _uvicorn(settings, host, port, workers, certfile, keyfile)


def _granian(settings: Settings, host: str, port: int, workers: int, certfile: str | None, keyfile: str | None) -> None:
    from pathlib import Path

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings

    Granian(
        FACTORY,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.auto,
        workers=workers,
        websockets=False,
        log_access=False,
        # Slow headers: the whole head must arrive within RS_HEADER_TIMEOUT.
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout * 1000)),
        ssl_cert=Path(certfile) if certfile else None,
        ssl_key=Path(keyfile) if keyfile else None,
        ssl_protocol_min=SSLProtocols.tls12,
        workers_kill_timeout=10,
    ).serve()


def _granian_in_process(
    app, settings: Settings, host: str, port: int, certfile: str | None, keyfile: str | None
) -> None:
    import asyncio
    import signal
    from pathlib import Path

    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.auto,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout * 1000)),
        ssl_cert=Path(certfile) if certfile else None,
        ssl_key=Path(keyfile) if keyfile else None,
        ssl_protocol_min=SSLProtocols.tls12,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    asyncio.run(main())


def _hypercorn(
    settings: Settings, host: str, port: int, workers: int, certfile: str | None, keyfile: str | None
) -> None:
    from hypercorn.config import Config
    from hypercorn.run import run as hypercorn_run

    config = Config()
    config.application_path = FACTORY + "()"  # hypercorn evaluates the expression after the colon
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.workers = workers
    config.keep_alive_timeout = settings.header_timeout
    config.h11_max_incomplete_size = 16 * 1024
    config.certfile, config.keyfile = certfile, keyfile
    config.graceful_timeout = 10
    hypercorn_run(config)


def _uvicorn(settings: Settings, host: str, port: int, workers: int, certfile: str | None, keyfile: str | None) -> None:
    import uvicorn

    # uvicorn's access log would be a second line per request; ours carries the metrics. (uvicorn has no
    # timeout for slow headers, and no HTTP/2.)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
        timeout_keep_alive=int(settings.header_timeout),
        h11_max_incomplete_event_size=16 * 1024,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        timeout_graceful_shutdown=10,
    )


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

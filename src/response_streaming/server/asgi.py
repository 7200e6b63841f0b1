"""The app for servers that start it in worker processes (`response_streaming.server.asgi:make_app`, a
factory): each worker builds it from the environment that `serve` left for it."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from .app import create_app

BIND_HOST_ENV = "RESPONSE_STREAMING_BIND_HOST"  # set by `serve`: the address the workers listen on
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def make_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("response_streaming").setLevel(logging.INFO)
    app = create_app(bind_host=os.environ.get(BIND_HOST_ENV, "127.0.0.1"))
    app.state.rs.gens()  # open the generation log now: what a killed predecessor left running is recovered at start
    return app

"""`response-streaming serve`: one HTTP server speaking OpenAI's chat completions, Bedrock runtime's
wire and our own SSE, all backed by the configured provider (the embedded model by default).

Routes: POST /v1/chat/completions, GET /v1/models (OpenAI); POST /model/{modelId}/converse,
/converse-stream, /invoke, /invoke-with-response-stream (Bedrock runtime); POST /v1/stream (our
events as SSE); GET /health.
"""
from __future__ import annotations

import logging

from ..config import Settings
from .app import create_app

__all__ = ["create_app", "serve"]


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the server until interrupted. The provider is loaded before the port opens."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    provider = app.state.rs.provider
    logging.getLogger("response_streaming.server").info(
        "serving provider=%s model=%s on http://%s:%d", provider.name, provider.model, host, port)
    # uvicorn's access log would be a second line per request; ours carries the metrics.
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")

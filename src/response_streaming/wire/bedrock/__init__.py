"""Amazon Bedrock runtime's wire formats, both directions, pure (no I/O, no boto3).

- `converse`: ConverseStream / Converse, one format for every model.
- `invoke`: InvokeModelWithResponseStream `chunk` frames; each model family's native JSON is one
  module (`anthropic`, `meta`, `mistral`, `titan`, `nova`, `cohere`, `deepseek`, `gptoss`) listed in
  `families.FAMILIES`.
- `frames`: what both streams share, and `encode` (events -> a whole stream through an encoder).
- `errors`: JSON error responses and in-stream exception frames.

Our Bedrock provider builds requests and reads answers with these; `serve` and the tests' fake Bedrock
write answers with the same encoders; boto3's own parser reads them back in the tests.
"""

from .common import base_model_id
from .converse import ConverseEncoder
from .errors import (
    CONVERSE_STREAM_EXCEPTIONS,
    ERROR_STATUS,
    INVOKE_STREAM_EXCEPTIONS,
    error_response,
    error_response_for,
    error_type_for,
    stream_exception_frame,
)
from .families import FAMILIES, family_of
from .frames import encode
from .invoke import InvokeEncoder, chunk_frame

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"

__all__ = [
    "CONVERSE_STREAM_EXCEPTIONS",
    "ERROR_STATUS",
    "EVENTSTREAM_CONTENT_TYPE",
    "FAMILIES",
    "INVOKE_STREAM_EXCEPTIONS",
    "ConverseEncoder",
    "InvokeEncoder",
    "base_model_id",
    "chunk_frame",
    "encode",
    "error_response",
    "error_response_for",
    "error_type_for",
    "family_of",
    "stream_exception_frame",
]

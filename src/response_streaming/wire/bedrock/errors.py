"""Bedrock's errors on the wire: JSON error responses sent instead of a stream (status,
`x-amzn-ErrorType` header, `{"message": ...}`), and exception frames sent inside a stream."""

from __future__ import annotations

import json

from ...errors import (
    AccessDenied,
    BadRequest,
    ConfigError,
    ModelNotFound,
    ProviderUnavailable,
    ResponseStreamingError,
    Throttled,
)
from ..eventstream import exception_frame

# Bedrock's error types and their HTTP statuses (from the bedrock-runtime service model).
ERROR_STATUS = {
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ValidationException": 400,
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 400,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    # Not Bedrock's own but sent by AWS's front door for bad or expired credentials.
    "UnrecognizedClientException": 403,
    "ExpiredTokenException": 403,
}

# Exceptions that may arrive inside a stream, by API.
CONVERSE_STREAM_EXCEPTIONS = (
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "serviceUnavailableException",
)
INVOKE_STREAM_EXCEPTIONS = CONVERSE_STREAM_EXCEPTIONS + ("modelTimeoutException",)


def error_response(
    error_type: str, message: str, request_id: str = "00000000-0000-0000-0000-000000000000"
) -> tuple[int, dict[str, str], bytes]:
    """A Bedrock JSON error response: `(status, headers, body)`.

    Headers carry `x-amzn-ErrorType: <Type>:http://internal.amazon.com/coral/com.amazon.bedrock/`
    (botocore reads the error code from it), `x-amzn-RequestId` and the JSON content type; the body
    is `{"message": ...}`. `error_type` is a key of `ERROR_STATUS`.
    """
    headers = {
        "Content-Type": "application/json",
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }
    return ERROR_STATUS[error_type], headers, json.dumps({"message": message}).encode()


def error_type_for(err: BaseException) -> str:
    """The Bedrock error type a server answers with for one of our errors (before the stream)."""
    if isinstance(err, AccessDenied):
        return "AccessDeniedException"
    if isinstance(err, ModelNotFound):
        return "ResourceNotFoundException"
    if isinstance(err, (BadRequest, ConfigError)):
        return "ValidationException"
    if isinstance(err, Throttled):
        return "ThrottlingException"
    if isinstance(err, ProviderUnavailable):
        return "ServiceUnavailableException"
    return "InternalServerException"


def error_response_for(err: BaseException) -> tuple[int, dict[str, str], bytes]:
    """`error_response` for one of our errors; the message is `str(err)` for our own (safe) errors."""
    message = str(err) if isinstance(err, ResponseStreamingError) else "The model failed; see the server log."
    return error_response(error_type_for(err), message)


def stream_exception_frame(err: BaseException) -> bytes:
    """The in-stream exception frame a server sends when the stream breaks after it started.

    Throttled -> throttlingException, BadRequest -> validationException, ProviderUnavailable ->
    serviceUnavailableException, anything else -> modelStreamErrorException (the model failed
    mid-answer). Each of these is valid for both streaming APIs.
    """
    if isinstance(err, Throttled):
        kind = "throttlingException"
    elif isinstance(err, (BadRequest, ConfigError)):
        kind = "validationException"
    elif isinstance(err, ProviderUnavailable):
        kind = "serviceUnavailableException"
    else:
        kind = "modelStreamErrorException"
    message = (
        str(err) if isinstance(err, ResponseStreamingError) else "The model failed mid-answer; see the server log."
    )
    return exception_frame(kind, message)

"""A small error hierarchy. Every message is written for the person using the app: it says what
happened and what to do, and never contains a traceback or a secret."""

from __future__ import annotations


class ResponseStreamingError(Exception):
    """Base class; `str(err)` is safe to show a user."""

    #: HTTP status a server front end should answer with.
    status = 500


class ConfigError(ResponseStreamingError):
    """The settings are wrong or incomplete (missing model file, unknown provider, bad value)."""

    status = 400


class BadRequest(ResponseStreamingError):
    """The request itself cannot be served (empty prompt, prompt too long, invalid parameter)."""

    status = 400


class MethodNotAllowed(BadRequest):
    """An HTTP method the path does not take (server front end)."""

    status = 405


class RequestTooLarge(BadRequest):
    """A request body over the server's limit (server front end)."""

    status = 413


class RequestTimeout(BadRequest):
    """A request body slower to arrive than the server allows (server front end)."""

    status = 408


class UnsupportedMediaType(BadRequest):
    """A request body that is not declared as JSON (server front end)."""

    status = 415


class AccessDenied(ResponseStreamingError):
    """Credentials missing, expired or without permission for this model."""

    status = 403


class Unauthorized(AccessDenied):
    """A server front end's API key or signature is missing or wrong."""

    status = 401


class ModelNotFound(ResponseStreamingError):
    """The model does not exist, was retired, or is not offered in this region."""

    status = 404


class Throttled(ResponseStreamingError):
    """Too many requests, or the local model's wait queue is full. Trying later helps."""

    status = 429


class ConversationBusy(Throttled):
    """Another answer is streaming in this conversation (another tab, window or replica)."""


class GenerationNotFound(ResponseStreamingError):
    """No generation has this id, or it ended longer ago than the retention time."""

    status = 404


class ConversationNotFound(ResponseStreamingError):
    """No conversation has this id, or it belongs to another signed-in user (the two look the same)."""

    status = 404


class ProviderUnavailable(ResponseStreamingError):
    """The provider could not be reached or failed before answering."""

    status = 503


class StreamInterrupted(ResponseStreamingError):
    """The stream broke after it started. What had arrived is the consumer's (the `Recorder` keeps it)."""

    status = 502


# HTTP's own refusals: they keep their status in every API's error shape (e.g. Bedrock's, which has
# no 401/405/408/413/415 error types of its own).
HTTP_REFUSALS = (Unauthorized, MethodNotAllowed, RequestTimeout, RequestTooLarge, UnsupportedMediaType)

"""Response Streaming: stream a language model's answer token by token."""

__version__ = "0.1.0"

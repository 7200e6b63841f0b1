"""The recorder's statuses and metrics, with the scripted provider (the point here is our layer)."""

from __future__ import annotations

from response_streaming.errors import Throttled
from response_streaming.events import Message, Params
from response_streaming.providers.replay import ReplayProvider, split_tokens
from response_streaming.recorder import Recorder

MSGS = [Message("user", "hi")]


def test_split_tokens_round_trips():
    text = "Hello,  world!\n\nNew para\tend "
    assert "".join(split_tokens(text)) == text


def test_complete_stream_has_metrics():
    rec = Recorder(ReplayProvider(text="one two three four").stream(MSGS, Params())).run()
    assert rec.status == "complete" and rec.text == "one two three four"
    assert rec.metrics.output_tokens == 4 and rec.metrics.input_tokens == 1
    assert rec.metrics.ttft_ms is not None and rec.metrics.stop_reason == "end_turn"


def test_failure_mid_stream_keeps_partial_text():
    rec = Recorder(ReplayProvider(text="a b c d e", fail_after=3).stream(MSGS, Params())).run()
    assert rec.status == "error" and rec.text == "a b c"
    assert "broke off" in rec.error


def test_error_before_first_token():
    rec = Recorder(
        ReplayProvider(fail_after=0, error=Throttled("Too many requests; try later.")).stream(MSGS, Params())
    ).run()
    assert (rec.status, rec.text, rec.error) == ("error", "", "Too many requests; try later.")


def test_stream_without_finish_is_incomplete():
    rec = Recorder(ReplayProvider(text="a b", finish=False).stream(MSGS, Params())).run()
    assert rec.status == "incomplete" and rec.text == "a b"


def test_consumer_stopping_marks_stopped_and_closes_upstream():
    closed = []

    def upstream():
        try:
            yield from ReplayProvider(text="a b c d").stream(MSGS, Params())
        finally:
            closed.append(True)

    rec = Recorder(upstream())
    it = iter(rec)
    assert next(it) == "a"
    it.close()
    assert rec.status == "stopped" and rec.text == "a" and closed == [True]


def test_unexpected_exception_becomes_a_safe_message():
    def broken():
        yield from ReplayProvider(text="x").stream(MSGS, Params())
        raise KeyError("secret internals")

    rec = Recorder(broken()).run()
    assert rec.status == "error" and "KeyError" in rec.error and "secret" not in rec.error

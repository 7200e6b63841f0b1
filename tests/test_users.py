"""Sign-in's server side: every conversation belongs to its user, enforced by the store's queries and the
chat functions (not by the page), on real SQLite and PostgreSQL; who may sign in; which providers and
models may be used. The sign-in itself, in a real browser against a real OIDC provider, is in
test_browser_auth.py."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, insert, select, text

from response_streaming import store as store_module
from response_streaming.chat import continue_turn, edit_turn, regenerate_turn, start_turn
from response_streaming.config import Settings
from response_streaming.errors import AccessDenied, ConfigError, ConversationNotFound
from response_streaming.events import Params
from response_streaming.generation import Generations
from response_streaming.providers.replay import ReplayProvider
from response_streaming.store import Store, conversations, generations
from response_streaming.users import allowed_providers, check_choice, email_refusal, principal

ALICE = "http://127.0.0.1:9/#alice"
BOB = "http://127.0.0.1:9/#bob"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    return request.getfixturevalue("postgres")()


@pytest.fixture()
def store(url):
    s = Store(url)
    yield s
    s.engine.dispose()


def test_a_user_sees_and_changes_only_their_own_conversations(store):
    alice, bob = store.scoped(ALICE), store.scoped(BOB)
    a = alice.create_conversation("alice's plans")
    alice.add_message(a, "user", "secret plans")
    b = bob.create_conversation("bob's notes")

    assert [c["id"] for c in alice.list_conversations()] == [a]
    assert [c["id"] for c in bob.list_conversations()] == [b]
    assert bob.list_conversations("plans") == []
    assert bob.get_conversation(a) is None  # as if it didn't exist: ids are not confirmed to others
    assert bob.messages(a) == []  # so an export of it by bob is empty too
    for attempt in (
        lambda: bob.rename_conversation(a, "mine now"),
        lambda: bob.delete_conversation(a),
        lambda: bob.add_message(a, "user", "injected"),
        lambda: bob.delete_messages_from(a, 0),
        lambda: bob.update_message(alice.messages(a)[0].id, "rewritten", "complete", "", {}),
    ):
        with pytest.raises(ConversationNotFound, match="belongs to another user"):
            attempt()
    # Nothing changed for alice.
    assert alice.get_conversation(a)["title"] == "alice's plans"
    assert [m.content for m in alice.messages(a)] == ["secret plans"]
    # Her own changes still work.
    alice.rename_conversation(a, "renamed")
    assert alice.get_conversation(a)["title"] == "renamed"
    alice.delete_conversation(a)
    assert alice.list_conversations() == []
    assert [c["id"] for c in bob.list_conversations()] == [b]


def test_without_sign_in_the_single_user_sees_every_conversation(store):
    mine = store.create_conversation("made without sign-in")
    owned = store.scoped(ALICE).create_conversation("alice's")
    assert store.owner is None
    assert {c["id"] for c in store.list_conversations()} == {mine, owned}
    assert store.get_conversation(mine)["owner"] is None
    # Signed-in users don't see conversations made before sign-in was turned on (they belong to nobody).
    assert [c["id"] for c in store.scoped(ALICE).list_conversations()] == [owned]
    assert store.scoped(BOB).get_conversation(mine) is None


def test_the_migration_keeps_existing_conversations_with_no_owner(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a database as schema 4 left it
        store_module.metadata.create_all(conn, tables=[store_module.schema_version])
        for version, migrate in enumerate(store_module.MIGRATIONS[:4], 1):
            migrate(conn)
            conn.execute(insert(store_module.schema_version).values(version=version))
        conn.execute(text("INSERT INTO conversations VALUES ('old', 'from before', '2026-01-01', '2026-01-01')"))
    engine.dispose()
    s = Store(url)
    assert s.schema_version() == len(store_module.MIGRATIONS) >= 5
    assert s.get_conversation("old")["owner"] is None
    assert [c["id"] for c in s.list_conversations()] == ["old"]
    assert s.scoped(ALICE).list_conversations() == []


@pytest.fixture()
def gens(store):
    g = Generations(store, Settings(provider="replay"))
    yield g
    g.close()


def test_chat_refuses_to_stream_into_someone_elses_conversation(gens, store):
    provider = ReplayProvider(text="the answer", rate=0)
    params = Params(max_tokens=16)
    a = store.scoped(ALICE).create_conversation("alice's")
    gid = start_turn(gens, a, provider, params, "hello", owner=ALICE)
    assert gens.wait(gid, 60).status == "complete"
    with store.engine.connect() as conn:
        assert conn.execute(select(generations.c.principal).where(generations.c.id == gid)).scalar() == ALICE
    msgs = store.messages(a)
    before = [(m.role, m.content) for m in msgs]

    for attempt in (
        lambda: start_turn(gens, a, provider, params, "mine?", owner=BOB),
        lambda: regenerate_turn(gens, a, provider, params, msgs[-1].id, owner=BOB),
        lambda: edit_turn(gens, a, provider, params, msgs[0].id, "edited", owner=BOB),
        lambda: continue_turn(gens, a, provider, params, msgs[-1].id, owner=BOB),
        lambda: start_turn(gens, "no-such-conversation", provider, params, "hi", owner=BOB),
    ):
        with pytest.raises(ConversationNotFound):
            attempt()
    assert [(m.role, m.content) for m in store.messages(a)] == before
    assert not store.busy(a)  # nothing was reserved or left running
    with store.engine.connect() as conn:
        assert conn.execute(select(generations.c.id).where(generations.c.principal == BOB)).first() is None
        assert conn.execute(select(conversations.c.owner).where(conversations.c.id == a)).scalar() == ALICE


def test_the_principal_is_issuer_and_subject():
    assert principal({"iss": "https://accounts.google.com", "sub": "1234", "email": "a@x.org"}) == (
        "https://accounts.google.com#1234"
    )
    with pytest.raises(AccessDenied, match="did not say who you are"):
        principal({"email": "a@x.org"})


@pytest.mark.parametrize(
    ("emails", "domains", "user", "refused"),
    [
        ("", "", {"email": "anyone@anywhere.org"}, None),
        ("", "", {}, None),
        ("", "example.com", {"email": "Ann@Example.com"}, None),
        ("", "example.com", {"email": "ann@evil-example.com"}, "ann@evil-example.com is not allowed"),
        ("", "example.com", {"email": "ann@sub.example.com"}, "is not allowed"),
        ("", "example.com", {"email": "ann@example.com.evil.org"}, "is not allowed"),
        ("ann@other.org", "example.com", {"email": "ann@other.org"}, None),
        ("ann@other.org", "", {"email": "bob@other.org"}, "RS_ALLOWED_EMAILS"),
        ("", "example.com", {"sub": "x"}, "did not share an email"),
        ("", "example.com", {"email": "ann@example.com", "email_verified": False}, "has not verified"),
        ("", "example.com", {"email": "ann@example.com", "email_verified": True}, None),
    ],
)
def test_who_may_sign_in(emails, domains, user, refused):
    why = email_refusal(Settings(allowed_emails=emails, allowed_email_domains=domains), user)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_which_providers_and_models_may_be_used():
    everything = Settings()
    check_choice(everything, "bedrock", "anything")
    limited = Settings(allowed_providers="local, openai", allowed_models="smollm2,llama3.2")
    assert allowed_providers(limited) == ["local", "openai"]
    check_choice(limited, "openai", "llama3.2")
    with pytest.raises(AccessDenied, match=r"bedrock provider is not allowed.*RS_ALLOWED_PROVIDERS"):
        check_choice(limited, "bedrock", "smollm2")
    with pytest.raises(AccessDenied, match=r"'gpt-9' is not allowed.*RS_ALLOWED_MODELS"):
        check_choice(limited, "openai", "gpt-9")
    with pytest.raises(AccessDenied, match="default model is not allowed"):
        check_choice(limited, "openai", "")
    with pytest.raises(ConfigError, match="unknown provider 'bedrok'"):
        allowed_providers(Settings(allowed_providers="bedrok"))

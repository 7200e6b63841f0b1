"""`serve` with API keys: a generation belongs to the key that started it. Its record holds a digest of
the key, never the key; any other key (or a generation started by a signed-in page user) gets the same
404 as an unknown id, so ids can't be probed; another key's Stop stops nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from response_streaming.config import Settings
from response_streaming.events import Params
from response_streaming.generation import Generations
from response_streaming.providers.replay import ReplayProvider
from response_streaming.server import create_app
from response_streaming.store import Store, generations

ASK = {"messages": [{"role": "user", "content": "Count."}], "params": {"max_tokens": 1000}}
KEY_A, KEY_B = "key-a-0123456789", "key-b-9876543210"
JSON = {"content-type": "application/json"}


@pytest.fixture()
def gens(tmp_path):
    g = Generations(Store(f"sqlite:///{tmp_path / 'history.sqlite3'}"))
    yield g
    g.close()


def test_a_generation_belongs_to_its_key_and_looks_missing_to_anyone_else(api_server, gens):
    provider = ReplayProvider(text=" ".join(f"w{i}" for i in range(400)), rate=100)
    base = api_server(create_app(Settings(api_keys=f"{KEY_A},{KEY_B}"), provider, gens=gens))
    a, b = {"authorization": f"Bearer {KEY_A}"}, {"authorization": f"Bearer {KEY_B}"}

    with httpx.stream("POST", f"{base}/v1/stream", json=ASK, headers=a, timeout=30) as r:
        gid = r.headers["x-generation-id"]
    with gens.store.engine.connect() as conn:
        recorded = conn.execute(select(generations.c.principal).where(generations.c.id == gid)).scalar()
    assert recorded.startswith("key:") and KEY_A not in recorded and recorded != f"key:{KEY_A}"

    unknown = "x" * len(gid)
    for method, path, headers in (("GET", "", b), ("POST", "/stop", {**b, **JSON})):
        theirs = httpx.request(method, f"{base}/v1/stream/{gid}{path}", headers=headers, timeout=10)
        missing = httpx.request(method, f"{base}/v1/stream/{unknown}{path}", headers=headers, timeout=10)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["type"] == missing.json()["error"]["type"] == "GenerationNotFound"
        assert theirs.json()["error"]["message"].replace(gid, unknown) == missing.json()["error"]["message"]
    assert gens.get(gid).running  # B's Stop stopped nothing
    # No key at all: 401 before anything is looked up.
    assert httpx.get(f"{base}/v1/stream/{gid}", timeout=10).status_code == 401

    stop = httpx.post(f"{base}/v1/stream/{gid}/stop", headers={**a, **JSON}, timeout=10)
    assert stop.status_code == 200 and stop.json()["stopped"] is True
    assert gens.wait(gid, 30).status == "stopped"


def test_a_page_users_generation_is_not_reachable_with_a_key(api_server, gens):
    provider = ReplayProvider(text="an answer", rate=0)
    base = api_server(create_app(Settings(api_keys=KEY_A), provider, gens=gens))
    owner = "https://issuer.example#alice"
    cid = gens.store.scoped(owner).create_conversation("alice's")
    gid = gens.start(provider, [], Params(max_tokens=8), conversation_id=cid, principal=owner)
    gens.wait(gid, 30)
    r = httpx.get(f"{base}/v1/stream/{gid}", headers={"authorization": f"Bearer {KEY_A}"}, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["type"] == "GenerationNotFound"

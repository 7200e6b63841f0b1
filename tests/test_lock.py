"""The lock files cover pyproject.toml: every dependency of every extra is pinned there, at a version its
specifier allows, with hashes. (A dependency added without `make lock` fails here, not on a fresh machine.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
APP_EXTRAS = ("local", "app", "bedrock", "openai", "server", "postgres")


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    found = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.M))
    assert found and text.count("--hash=sha256:") >= len(found), f"{lock} must pin every package with its hashes"
    return {canonicalize_name(name): version for name, version in found.items()}


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return [r for r in reqs if canonicalize_name(r.name) != canonicalize_name(PROJECT["name"])]


@pytest.mark.parametrize(
    "lock, extras", [("requirements.lock", APP_EXTRAS), ("requirements-test.lock", (*APP_EXTRAS, "test", "bench"))]
)
def test_every_dependency_is_pinned_within_its_specifier(lock, extras):
    pinned = pins(lock)
    for req in requirements(extras):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in {lock}: run `make lock`"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{req} vs {pinned[name]} in {lock}: run `make lock`"
        )


def test_the_app_lock_agrees_with_the_test_lock():
    app, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: v for name, v in app.items() if test.get(name) != v} == {}

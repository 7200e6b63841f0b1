"""Sign-in for the page: Streamlit's `st.login` with the OIDC provider in `.streamlit/secrets.toml` [auth].

`gate()` runs first in every page run. Without an [auth] section it does nothing and the app stays
the single-user local app. With one, a visitor who is not signed in gets only the sign-in page (the
run stops before any conversation, sidebar control or provider is touched), and a signed-in person
whose email the settings don't admit gets a one-line refusal and a sign-out button. Everyone else
gets their principal (`users.principal`), which the page scopes the history with.

How Streamlit behaves here (1.67, read in its source): `st.user` holds `is_logged_in` only when
secrets have an [auth] section; after sign-in it holds the ID token's claims (`iss`, `sub`, `email`…),
read from a signed cookie when the session starts. `st.login()` and `st.logout()` send the browser to
Streamlit's own /auth routes, so they work from a button's callback.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from .. import users
from ..config import Settings
from ..render import sanitize


def configured() -> bool:
    """Is sign-in configured (an [auth] section in the secrets)?"""
    return "is_logged_in" in st.user


def _named_providers() -> list[str]:
    """The [auth.<name>] subsections (Streamlit's named providers), in the file's order."""
    try:
        section = st.secrets.get("auth") or {}
    except FileNotFoundError:  # no secrets file (st.user can still say sign-in is on, e.g. under AppTest)
        return []
    return [name for name, value in section.items() if isinstance(value, Mapping)]


def gate(settings: Settings) -> str | None:
    """None without sign-in; else the signed-in user's principal. Anyone else ends the run here."""
    if not configured():
        return None
    if not st.user.is_logged_in:
        st.write("Sign in to see your conversations.")
        named = _named_providers()
        for name in named:  # [auth.google], [auth.microsoft]...: one button each
            st.button(
                f"Sign in with {name}", key=f"sign-in-{name}", icon=":material/login:", on_click=st.login, args=(name,)
            )
        if not named:  # the [auth] section itself is the provider
            st.button("Sign in", key="sign-in", type="primary", icon=":material/login:", on_click=st.login)
        st.stop()
    claims = st.user.to_dict()
    refusal = users.email_refusal(settings, claims)
    if refusal is not None:
        st.error(sanitize(refusal), icon=":material/block:")
        st.button("Sign out", key="sign-out", icon=":material/logout:", on_click=st.logout)
        st.stop()
    owner = users.principal(claims)
    with st.sidebar, st.container(key="account", horizontal=True, vertical_alignment="center"):
        st.caption(sanitize(str(claims.get("email") or claims.get("name") or claims.get("sub"))))
        st.button("Sign out", key="sign-out", icon=":material/logout:", on_click=st.logout)
    return owner

"""Who a signed-in person is, and what the settings let them in to and use. Pure functions: the page
(`ui/auth.py`) draws the sign-in, `store` and `chat` enforce ownership with the principal made here.

- The principal is the OIDC issuer and subject, `"<iss>#<sub>"`: the subject is unique and never
  reassigned only within its issuer (OIDC Core 5.7), and an email address can change owner or be
  reused, so it is shown but never trusted as the identity. An issuer URL has no fragment, so `#`
  separates the two unambiguously.
- RS_ALLOWED_EMAILS / RS_ALLOWED_EMAIL_DOMAINS: who may sign in at all (empty both: anyone the
  provider signs in). A provider that says the address is not verified is refused.
- RS_ALLOWED_PROVIDERS / RS_ALLOWED_MODELS: what the sidebar offers and the page accepts, checked
  before a provider is built (a model id typed by hand is never loaded or cached).
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import Settings
from .errors import AccessDenied, ConfigError
from .providers import NAMES


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def principal(user: Mapping) -> str:
    """The identity conversations and generations belong to: the token's issuer and subject."""
    iss, sub = str(user.get("iss") or ""), str(user.get("sub") or "")
    if not iss or not sub:
        raise AccessDenied("The sign-in provider did not say who you are (no 'iss' or 'sub' in its ID token).")
    return f"{iss}#{sub}"


def email_refusal(settings: Settings, user: Mapping) -> str | None:
    """Why this signed-in user may not use the app (a message to show), or None if they may."""
    emails = {e.lower() for e in _list(settings.allowed_emails)}
    domains = {d.lower().lstrip("@") for d in _list(settings.allowed_email_domains)}
    if not emails and not domains:
        return None
    email = str(user.get("email") or "").strip().lower()
    if not email:
        return "Your sign-in provider did not share an email address, and this app admits only listed addresses."
    if user.get("email_verified") is False:  # absent (e.g. Microsoft Entra) is not a refusal; false is
        return f"Your sign-in provider has not verified {email}; verify it there, then sign in again."
    if email in emails or email.rpartition("@")[2] in domains:
        return None
    return (
        f"{email} is not allowed to use this app. Sign in with another account, or ask the operator to add "
        "the address to RS_ALLOWED_EMAILS (or its domain to RS_ALLOWED_EMAIL_DOMAINS)."
    )


def allowed_providers(settings: Settings) -> list[str]:
    """The providers the app offers, in the registry's order (all when RS_ALLOWED_PROVIDERS is empty)."""
    listed = _list(settings.allowed_providers)
    unknown = [p for p in listed if p not in NAMES]
    if unknown:
        raise ConfigError(f"RS_ALLOWED_PROVIDERS names an unknown provider {unknown[0]!r}; known: {', '.join(NAMES)}.")
    return [n for n in NAMES if not listed or n in listed]


def allowed_models(settings: Settings) -> list[str]:
    """The model ids the app offers and accepts; empty means any."""
    return _list(settings.allowed_models)


def check_choice(settings: Settings, provider: str, model: str) -> None:
    """Refuse a provider or model the settings don't allow (`AccessDenied`, naming the setting)."""
    providers = allowed_providers(settings)
    if provider not in providers:
        raise AccessDenied(
            f"The {provider} provider is not allowed here; pick one of: {', '.join(providers)} (RS_ALLOWED_PROVIDERS)."
        )
    models = allowed_models(settings)
    if models and model not in models:
        shown = repr(model[:80]) if model else "The provider's default model"
        raise AccessDenied(f"{shown} is not allowed here; pick one of: {', '.join(models)} (RS_ALLOWED_MODELS).")

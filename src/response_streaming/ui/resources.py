"""What the page keeps per process (`st.cache_resource`, shared by every session): the history
store, the durable generations running on it, and the provider; and the one-line messages a person
can act on when something fails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from .. import users
from ..config import Settings
from ..errors import ConfigError, ResponseStreamingError
from ..generation import Generations
from ..providers import make_provider, provider_info
from ..render import sanitize
from ..store import Store

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def store(url: str) -> Store:
    return Store(url)


@st.cache_resource(show_spinner=False)
def generations(url: str) -> Generations:
    # One per process and database: its jobs outlive every page run and session.
    return Generations(store(url))


@st.cache_resource(show_spinner="Loading the model…")
def _provider(settings: Settings):
    return make_provider(settings)


def get_provider(settings: Settings):
    """The provider for these settings, or a `ResponseStreamingError` a person can act on.

    A provider or model the settings don't allow is refused before anything is built or cached."""
    users.check_choice(settings, settings.provider, settings.model)
    try:
        return _provider(settings)
    except ResponseStreamingError:
        raise
    except ImportError as err:
        name = settings.provider
        if (err.name or "").startswith("response_streaming"):
            raise ConfigError(
                f"The {name} provider is not part of this version of the app yet; pick another provider in the sidebar."
            ) from err
        raise ConfigError(
            f"The {name} provider needs the Python package {err.name or '(unknown)'}: "
            f"run `{provider_info(name).install}`, or pick another provider in the sidebar."
        ) from err
    except Exception as err:
        log.exception("provider %s failed to start", settings.provider)
        raise ConfigError(
            f"The {settings.provider} provider could not start ({type(err).__name__}); check its "
            "settings (the details are in the server log) or pick another provider."
        ) from err


@contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Show a failure as one line a person can act on, never a traceback (the details go to the log).

    Used by the whole page and by `tail`, whose own reruns do not pass through the page's code.
    """
    try:
        yield
    except SQLAlchemyError:
        log.exception("database error")
        st.error(
            "The history database could not be reached. Check that it is running, then reload the page; "
            "the details are in the server log."
        )
    except ResponseStreamingError as err:
        st.error(sanitize(str(err)))
    except Exception:  # a bug
        log.exception("unexpected error in the page")
        st.error("Something went wrong on the server (the details are in its log). Reload the page to try again.")

"""`response-streaming app`: the chat page from the installed package, started by Streamlit's own CLI.

Streamlit reads `.streamlit/config.toml` next to the page it runs (`streaming_app.py` here), so the
project's settings (loopback address, port 8080, no usage statistics, quiet toolbar) come with the
package and apply from any directory. Flags given here override them, as they do for `streamlit run`.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from ..errors import ConfigError

PAGE = Path(__file__).with_name("streaming_app.py")
CONFIG = Path(__file__).parent / ".streamlit" / "config.toml"


def streamlit_argv(host: str | None, port: int | None, options: list[str]) -> list[str]:
    """`streamlit run` arguments: the packaged page, then our flags, then the caller's own options
    (last, so an explicit `--server.port` among them wins, as on Streamlit's command line)."""
    argv = ["run", str(PAGE)]
    if host:
        argv += ["--server.address", host]
    if port:
        argv += ["--server.port", str(port)]
    return argv + options


def exposure_warning(host: str | None) -> str:
    """What to tell someone who opens the page beyond this machine ('' for loopback or the default)."""
    if not host or host == "localhost":
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:  # a host name: it may well resolve beyond this machine
        pass
    return (
        f"warning: the page will listen on {host}: unless sign-in is configured ([auth] in .streamlit/secrets.toml, "
        "or --secrets.files PATH), anyone who can reach it can read, export and delete every conversation and use "
        "the configured provider (see README, Security)."
    )


def run(host: str | None = None, port: int | None = None, options: list[str] | None = None) -> int:
    """Serve the page until interrupted; returns the exit code."""
    if warning := exposure_warning(host):
        print(warning, file=sys.stderr)
    try:
        import click
        from streamlit.web import cli as streamlit_cli
    except ImportError as err:
        raise ConfigError("Streamlit is not installed: pip install 'response-streaming[app]'.") from err
    try:
        # standalone_mode=False: Streamlit's CLI returns here instead of calling sys.exit itself.
        streamlit_cli.main(
            args=streamlit_argv(host, port, options or []), prog_name="response-streaming app", standalone_mode=False
        )
    except click.ClickException as err:  # a mistyped Streamlit option; click's usage text would name `run`
        print(f"error: {err.format_message()} (Streamlit's options: `streamlit config show`)", file=sys.stderr)
        return err.exit_code
    except click.exceptions.Abort:
        return 130
    return 0

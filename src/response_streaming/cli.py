"""`response-streaming`: open the chat page, ask a question in the terminal, prepare the model, or serve the HTTP
API."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .config import Settings
from .errors import ResponseStreamingError
from .events import EFFORTS, Message, Params
from .providers import NAMES


def _settings(args) -> Settings:
    overrides = {k: v for k, v in (("provider", args.provider), ("model", args.model)) if v}
    return Settings(**overrides)


def _generations(settings: Settings):
    """The durable generations on the history database (so `attach` can follow an answer from elsewhere)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .errors import ConfigError
    from .generation import Generations, exit_on_sigterm
    from .store import Store

    exit_on_sigterm()  # a SIGTERM exits normally: a running answer is saved as interrupted on the way out
    try:
        return Generations(Store(settings.sqlalchemy_url), settings)
    except SQLAlchemyError as err:
        where = "RS_DATABASE_URL" if settings.database_url else f"RS_DATA_DIR ({settings.data_dir})"
        raise ConfigError(f"The history database could not be opened ({type(err).__name__}); check {where}.") from err


DIM, RESET = "\x1b[2m", "\x1b[0m"


def _print(gens, gid: str, after: int = 0, show_reasoning: bool = True) -> dict:
    """Print the answer's text after `after` as it arrives; returns its last chunk's data (how it ended).

    The answer alone goes to stdout (so `ask ... > file` keeps just the answer); the model's thinking,
    as it streams, to stderr, dimmed on a terminal (unless NO_COLOR is set), ended by a newline.
    """
    dim = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    end: dict = {}
    thinking = False
    for chunk in gens.follow(gid, after):
        if chunk.kind == "reasoning":
            if show_reasoning and chunk.text:
                sys.stderr.write(("" if thinking or not dim else DIM) + chunk.text)
                sys.stderr.flush()
                thinking = True
            continue
        if thinking:  # the thought ends where anything else starts (a thought cut short included)
            sys.stderr.write((RESET if dim else "") + "\n")
            sys.stderr.flush()
            thinking = False
        if chunk.kind == "text":
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        elif chunk.terminal:
            end = chunk.data
    sys.stdout.write("\n")
    return end


def _report(end: dict) -> int:
    """Say how an answer ended (stderr) and choose the exit code: 0 complete or stopped, 1 error, 3 cut short."""
    status = end.get("status", "")
    if status in ("error", "incomplete", "interrupted"):
        print(f"{'error' if status == 'error' else 'warning'}: {end.get('message', '')}", file=sys.stderr)
        return 1 if status == "error" else 3
    if status == "stopped":
        print("stopped: the answer above is partial.", file=sys.stderr)
    return 0


def cmd_ask(args) -> int:
    from .chat import check_prompt
    from .providers import make_provider

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    check_prompt(prompt)
    settings = _settings(args)
    provider = make_provider(settings)
    params = Params(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        stop=tuple(args.stop or ()),
        system=args.system or "",
        reasoning=args.think or "",
    )
    gens = _generations(settings)
    try:
        gid = gens.start(provider, [Message("user", prompt)], params)
        try:
            end = _print(gens, gid, show_reasoning=not args.hide_reasoning)
        except KeyboardInterrupt:
            gens.stop(gid)  # Ctrl-C in the terminal that asked is this answer's Stop
            raise
        if args.stats:
            m = end.get("metrics", {})
            thought = f"first thought {m['ttfr_ms']} ms, " if m.get("ttfr_ms") is not None else ""
            print(
                f"[{end.get('status')}] generation {gid}: {thought}first token {m.get('ttft_ms')} ms, "
                f"{m.get('output_tokens')} tokens, {m.get('tokens_per_s')} tokens/s",
                file=sys.stderr,
            )
        return _report(end)
    finally:
        gens.close()


def cmd_attach(args) -> int:
    gens = _generations(Settings())
    try:
        return _report(_print(gens, args.id, args.after, show_reasoning=not args.hide_reasoning))
    except KeyboardInterrupt:  # detaching stops nothing
        print(f"\ndetached; the answer goes on (attach again: response-streaming attach {args.id})", file=sys.stderr)
        return 130
    finally:
        gens.close()


def cmd_prepare(args) -> int:
    from .providers.local import BUNDLED, resolve_model_path

    settings = Settings()
    if settings.model_path:
        print(f"Model ready: {resolve_model_path(settings, progress=True)}")
        return 0
    for name in BUNDLED:  # every bundled model, so switching in the sidebar needs no wait
        path = resolve_model_path(settings.model_copy(update={"local_model": name, "model": ""}), progress=True)
        print(f"Model ready ({name}): {path}")
    return 0


def cmd_serve(args) -> int:
    from .server import serve

    serve(
        _settings(args),
        host=args.host,
        port=args.port,
        allow_no_keys=args.allow_no_keys,
        certfile=args.ssl_certfile,
        keyfile=args.ssl_keyfile,
        workers=args.workers,
        server=args.server,
    )
    return 0


def cmd_app(args) -> int:
    from .app import run

    return run(host=args.host, port=args.port, options=args.streamlit_options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="response-streaming", description="Stream a language model's answer token by token."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # Defaults come from the page's packaged .streamlit/config.toml (127.0.0.1:8080), so that file
    # stays the one place they are written; other Streamlit options (--theme.base dark) pass through.
    app = sub.add_parser(
        "app",
        help="open the chat page (Streamlit) in your browser",
        allow_abbrev=False,
        description="Serve the chat page. Other options go to Streamlit, e.g. --theme.base dark.",
    )
    app.add_argument("--port", type=int, help="port to listen on (default: 8080)")
    app.add_argument("--host", help="address to listen on (default: 127.0.0.1, this machine only)")
    app.set_defaults(func=cmd_app)

    def provider_options(p):
        p.add_argument("--provider", choices=NAMES, help="default: RS_PROVIDER or local")
        p.add_argument("--model", help="model id (default: the provider's default)")

    ask = sub.add_parser("ask", help="stream an answer to stdout")
    ask.add_argument("prompt", help="the prompt, or - to read it from stdin")
    provider_options(ask)
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--top-p", type=float)
    ask.add_argument("--stop", action="append", help="a stop sequence (repeatable)")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--stats", action="store_true", help="print time to first token and tokens/s to stderr")
    ask.add_argument("--think", choices=EFFORTS, help="ask a reasoning model to think first, with this effort")
    ask.add_argument(
        "--hide-reasoning",
        action="store_true",
        help="leave the model's thinking out (it goes to stderr, the answer alone to stdout)",
    )
    ask.set_defaults(func=cmd_ask)

    attach = sub.add_parser("attach", help="print an answer being written (or written lately) and follow it to its end")
    attach.add_argument("id", help="the generation id (ask --stats, X-Generation-Id, or the page's answer)")
    attach.add_argument("--after", type=int, default=0, metavar="N", help="start after event N (default: the start)")
    attach.add_argument("--hide-reasoning", action="store_true", help="leave the model's thinking out")
    attach.set_defaults(func=cmd_attach)

    prep = sub.add_parser("prepare", help="assemble and verify the bundled model files")
    prep.set_defaults(func=cmd_prepare)

    serve = sub.add_parser("serve", help="HTTP API: OpenAI chat completions, Bedrock runtime, SSE")
    provider_options(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--allow-no-keys",
        action="store_true",
        help="serve a non-loopback --host without RS_API_KEYS (anyone who reaches it can use it)",
    )
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: one per core; 1 with the embedded model)"
    )
    serve.add_argument(
        "--server",
        choices=["granian", "hypercorn", "uvicorn"],
        default="granian",
        help="HTTP server (default granian: HTTP/1.1 and HTTP/2; the others for comparison)",
    )
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:  # no command: say what there is, successfully
        parser.print_help()
        return 0
    if unknown and args.command != "app":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.streamlit_options = unknown  # `app` hands options it doesn't know to Streamlit
    try:
        return args.func(args)
    except ResponseStreamingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`ask ... | head`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush can't fail again
        return 141
    except ValueError as err:  # pydantic settings validation: a bad RS_* value
        print(f"error: invalid setting: {err}".splitlines()[0], file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`response-streaming`: open the chat page, ask a question in the terminal, prepare the model, or serve the HTTP
API."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .config import Settings
from .errors import ResponseStreamingError
from .events import Message, Params
from .providers import NAMES
from .recorder import Recorder


def _settings(args) -> Settings:
    overrides = {k: v for k, v in (("provider", args.provider), ("model", args.model)) if v}
    return Settings(**overrides)


def cmd_ask(args) -> int:
    from .chat import check_prompt
    from .providers import make_provider

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    check_prompt(prompt)
    provider = make_provider(_settings(args))
    params = Params(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                    stop=tuple(args.stop or ()), system=args.system or "")
    rec = Recorder(provider.stream([Message("user", prompt)], params))
    for piece in rec:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if args.stats:
        m = rec.metrics
        print(f"[{rec.status}] first token {m.ttft_ms} ms, {m.output_tokens} tokens, {m.tokens_per_s} tokens/s", file=sys.stderr)
    if rec.status == "error":
        print(f"error: {rec.error}", file=sys.stderr)
        return 1
    if rec.status == "incomplete":
        print(f"warning: {rec.error}", file=sys.stderr)
        return 3
    return 0


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

    serve(_settings(args), host=args.host, port=args.port, allow_no_keys=args.allow_no_keys,
          certfile=args.ssl_certfile, keyfile=args.ssl_keyfile, workers=args.workers, server=args.server)
    return 0


def cmd_app(args) -> int:
    from .app import run

    return run(host=args.host, port=args.port, options=args.streamlit_options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="response-streaming",
                                     description="Stream a language model's answer token by token.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # Defaults come from the page's packaged .streamlit/config.toml (127.0.0.1:8080), so that file
    # stays the one place they are written; other Streamlit options (--theme.base dark) pass through.
    app = sub.add_parser("app", help="open the chat page (Streamlit) in your browser", allow_abbrev=False,
                         description="Serve the chat page. Other options go to Streamlit, e.g. --theme.base dark.")
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
    ask.set_defaults(func=cmd_ask)

    prep = sub.add_parser("prepare", help="assemble and verify the bundled model files")
    prep.set_defaults(func=cmd_prepare)

    serve = sub.add_parser("serve", help="HTTP API: OpenAI chat completions, Bedrock runtime, SSE")
    provider_options(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--allow-no-keys", action="store_true",
                       help="serve a non-loopback --host without RS_API_KEYS (anyone who reaches it can use it)")
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    serve.add_argument("--workers", type=int, help="worker processes (default: one per core; 1 with the embedded model)")
    serve.add_argument("--server", choices=["granian", "hypercorn", "uvicorn"], default="granian",
                       help="HTTP server (default granian: HTTP/1.1 and HTTP/2; the others for comparison)")
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

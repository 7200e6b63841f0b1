"""The CLI through its installed entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).parent / "response-streaming")


def run(*args, input=None, env=None):
    import os

    keep = {k: v for k, v in os.environ.items() if not k.startswith("RS_") or k == "RS_DATA_DIR"}  # conftest's
    full_env = keep | {"RS_N_CTX": "2048"} | (env or {})
    return subprocess.run([EXE, *args], input=input, capture_output=True, text=True, timeout=300, env=full_env)


def test_ask_streams_the_real_model_to_stdout():
    out = run("ask", "Write a story about two cats that go on an adventure:", "--max-tokens", "16", "--stats")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "[complete]" in out.stderr and "tokens/s" in out.stderr


def test_ask_reads_the_prompt_from_stdin():
    out = run("ask", "-", "--max-tokens", "8", "--temperature", "0", input="The sky is")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_output_arrives_before_the_process_ends():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_") or k == "RS_DATA_DIR"} | {
        "RS_REPLAY_RATE": "20"
    }
    proc = subprocess.Popen([EXE, "ask", "hi", "--provider", "replay"], stdout=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.read(4)  # a word arrives while the rest is still being generated
    assert first and proc.poll() is None
    rest = proc.stdout.read()
    assert proc.wait(30) == 0 and "two cats" in first + rest


def test_empty_prompt_is_a_one_line_error():
    out = run("ask", "   ")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1


def test_missing_model_file_is_a_one_line_error(tmp_path):
    out = run("ask", "hi", env={"RS_MODEL_PATH": str(tmp_path / "missing.gguf")})
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: Model file not found: {tmp_path / 'missing.gguf'}. Set RS_MODEL_PATH to an existing .gguf file."
    ]


def test_version_and_no_command():
    from response_streaming import __version__

    assert run("--version").stdout.strip() == f"response-streaming {__version__}"
    bare = run()
    assert bare.returncode == 0 and "usage: response-streaming" in bare.stdout
    assert all(cmd in bare.stdout for cmd in ("app", "ask", "prepare", "serve"))


def test_unknown_options_are_refused_outside_app():
    out = run("ask", "hi", "--provider", "replay", "--server.port", "1")
    assert out.returncode == 2 and "unrecognized arguments: --server.port 1" in out.stderr


def test_app_serves_the_page_with_its_packaged_settings_from_any_directory(tmp_path):
    """`app` from a directory without project files: the packaged .streamlit/config.toml applies
    (loopback only), and options it doesn't know reach Streamlit (here a base URL path)."""
    import os
    import urllib.request

    from conftest import free_port, wait_http

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")} | {"RS_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [EXE, "app", "--port", str(port), "--server.baseUrlPath", "chat"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/chat/_stcore/health", proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/chat/") as page:
            assert page.status == 200 and b'<div id="root">' in page.read()
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
    assert f"URL: http://127.0.0.1:{port}/chat" in log and "Network URL" not in log, log


def test_a_mistyped_streamlit_option_is_a_one_line_error():
    out = run("app", "--server.prot", "9000")
    assert out.returncode == 2
    assert out.stderr.startswith("error: No such option '--server.prot'") and len(out.stderr.strip().splitlines()) == 1


def test_a_checkout_and_the_installed_app_read_one_streamlit_config():
    """`streamlit run streaming_app.py` and `make run` read .streamlit/config.toml at the root: the packaged file."""
    import tomllib

    from conftest import ROOT
    from response_streaming.app import CONFIG

    assert (ROOT / ".streamlit" / "config.toml").resolve() == CONFIG.resolve()
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["browser"]["gatherUsageStats"] is False
    assert config["client"]["toolbarMode"] == "minimal"


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`response-streaming ask ... | head -c 80`: the pipe closes under the writer."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")} | {"RS_REPLAY_RATE": "50"}
    proc = subprocess.Popen(
        [EXE, "ask", "hi", "--provider", "replay"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.read(10)
    proc.stdout.close()
    assert proc.wait(60) == 141
    assert proc.stderr.read() == ""


def test_app_warns_when_the_page_leaves_this_machine():
    from response_streaming.app import exposure_warning

    assert exposure_warning(None) == exposure_warning("127.0.0.1") == exposure_warning("::1") == ""
    assert exposure_warning("localhost") == exposure_warning("127.0.0.2") == ""
    for host in ("0.0.0.0", "::", "10.0.0.5", "chat.example.com"):
        assert exposure_warning(host).startswith(f"warning: the page will listen on {host}: unless sign-in is")


def test_reasoning_goes_to_stderr_and_the_answer_alone_to_stdout():
    env = {"RS_REPLAY_TEXT": "It is 4.", "RS_REPLAY_THINKING": "Two and two make four."}
    out = run("ask", "2+2?", "--provider", "replay", "--stats", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "It is 4.\n"
    assert out.stderr.startswith("Two and two make four.\n")  # not a terminal: no colour codes
    assert "first thought" in out.stderr
    hidden = run("ask", "2+2?", "--provider", "replay", "--hide-reasoning", env=env)
    assert (hidden.stdout, hidden.stderr) == ("It is 4.\n", "")


def test_reasoning_is_dimmed_on_a_terminal():
    import os
    import pty

    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_") and k != "NO_COLOR"}
    env |= {"RS_REPLAY_TEXT": "It is 4.", "RS_REPLAY_THINKING": "Two and two."}
    proc = subprocess.run(
        [EXE, "ask", "2+2?", "--provider", "replay"],
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
        timeout=60,
        env=env,
    )
    os.close(secondary)
    seen = os.read(primary, 4096)
    os.close(primary)
    assert proc.returncode == 0 and proc.stdout == "It is 4.\n"
    assert seen.startswith(b"\x1b[2mTwo and two.\x1b[0m")

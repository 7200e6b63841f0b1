"""The CLI through its installed entry point."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).parent / "response-streaming")


def run(*args, input=None, env=None):
    import os
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")} | {"RS_N_CTX": "2048"} | (env or {})
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")} | {"RS_REPLAY_RATE": "20"}
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
    assert out.stderr.strip().splitlines() == [f"error: Model file not found: {tmp_path / 'missing.gguf'}. Set RS_MODEL_PATH to an existing .gguf file."]

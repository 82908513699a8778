"""Smart-Turn v3 end-of-turn scoring (ONNX), loaded by path from the pipecat-ai wheel.

The pipecat-ai wheel is installed only for two of its files: the ONNX model
``audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx`` and the numpy-only
Whisper log-mel features ``audio/turn/smart_turn/_whisper_features.py``.
``pipecat`` itself is never imported (its dependencies are not installed):
the package directory is located with ``importlib.util.find_spec`` and the
feature module is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
WINDOW_S = 8
"""The model reads the last 8 s of audio (left-padded with zeros when shorter)."""
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE
_SMART_TURN_DIR = ("audio", "turn", "smart_turn")
MODEL_FILE = "data/smart-turn-v3.2-cpu.onnx"
FEATURES_FILE = "_whisper_features.py"

Audio = npt.NDArray[np.float32]


class SmartTurnNotFoundError(FileNotFoundError):
    """The Smart-Turn model or its feature code is missing."""


def bundled_dir() -> Path:
    """The ``smart_turn`` directory of the installed pipecat-ai wheel (not imported).

    Raises:
        SmartTurnNotFoundError: pipecat-ai is not installed.
    """
    spec = importlib.util.find_spec("pipecat")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise SmartTurnNotFoundError(
            "Smart-Turn needs the pipecat-ai wheel for its ONNX model and feature code "
            "(pip install --no-deps pipecat-ai==1.14.0), or pass smart_turn_model=<path>")
    return Path(locations[0]).joinpath(*_SMART_TURN_DIR)


def _load_features(path: Path) -> Callable[..., Any]:
    """``compute_whisper_log_mel_features`` from its file, without importing pipecat."""
    if not path.is_file():
        raise SmartTurnNotFoundError(f"Smart-Turn feature code not found: {path}")
    spec = importlib.util.spec_from_file_location("_va_smart_turn_features", path)
    if spec is None or spec.loader is None:
        raise SmartTurnNotFoundError(f"cannot load Smart-Turn feature code from {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[..., Any], module.compute_whisper_log_mel_features)


def fit_window(audio: Audio) -> Audio:
    """The last 8 s of ``audio``, left-padded with zeros to exactly 8 s."""
    if audio.size >= WINDOW_SAMPLES:
        return audio[-WINDOW_SAMPLES:]
    return np.pad(audio, (WINDOW_SAMPLES - audio.size, 0))


class SmartTurnModel:
    """P(the speaker finished their turn) for 16 kHz mono float32 audio.

    Args:
        model_path: a Smart-Turn v3 ONNX file; default the one in pipecat-ai.
        threads: onnxruntime intra-op threads (1: leave the other core to
            the rest of the pipeline).

    Raises:
        SmartTurnNotFoundError: a file is missing (the message names it).
    """

    def __init__(self, model_path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        # The feature code always comes from the wheel; the model may be another file.
        base = bundled_dir()
        path = base / MODEL_FILE if model_path is None else Path(model_path).expanduser()
        if not path.is_file():
            raise SmartTurnNotFoundError(f"Smart-Turn model not found: {path}")
        self._features = _load_features(base / FEATURES_FILE)
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        started = time.perf_counter()
        self._session = ort.InferenceSession(str(path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self.path = path
        logger.info("smart-turn: loaded %s in %.2f s", path.name, time.perf_counter() - started)

    def probability(self, audio: Audio) -> float:
        """P(end of turn) for the turn's audio so far (only the last 8 s count)."""
        window = fit_window(np.asarray(audio, dtype=np.float32))
        features = self._features(window, do_normalize=True)
        batch = np.expand_dims(np.asarray(features, dtype=np.float32), axis=0)
        outputs = self._session.run(None, {"input_features": batch})
        return float(np.asarray(outputs[0]).reshape(-1)[0])

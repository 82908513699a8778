"""A RapidOCR engine wired to the model files inside the ``rapidocr`` wheel, offline and quiet.

RapidOCR downloads a model when its ``model_path`` is unset and the file is
not where its model table expects it. Every ``model_path`` is therefore set
to the file the wheel ships, so no code path can reach the network, and a
missing file is an error here, not a download.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

__all__ = ["MODEL_FILES", "EngineOptions", "OCREngine", "build_engine", "models_dir"]

MODEL_FILES: Final = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}
"""The wheel's detection, orientation and recognition models (rapidocr 3.10)."""

LimitType = Literal["min", "max"]


class OCREngine(Protocol):
    """What is used of ``rapidocr.RapidOCR``: called on a BGR image, returns its output."""

    def __call__(self, img_content: Any) -> Any:
        """Detect, classify and recognise the text in ``img_content``."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    """The RapidOCR settings a :class:`TextReader` exposes."""

    text_score: float = 0.5
    use_cls: bool = True
    det_limit_side_len: int = 736
    det_limit_type: LimitType = "min"
    threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.text_score, bool) or not isinstance(self.text_score, int | float) \
                or not 0 <= self.text_score <= 1:
            raise ValueError(f"TextReader text_score must be in 0..1, got {self.text_score!r}")
        if isinstance(self.det_limit_side_len, bool) \
                or not isinstance(self.det_limit_side_len, int) or self.det_limit_side_len < 32:
            raise ValueError(f"TextReader det_limit_side_len must be an int >= 32, "
                             f"got {self.det_limit_side_len!r}")
        if self.det_limit_type not in ("min", "max"):
            raise ValueError(f"TextReader det_limit_type must be 'min' or 'max', "
                             f"got {self.det_limit_type!r}")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"TextReader threads must be a positive int or None, "
                             f"got {self.threads!r}")


def models_dir() -> Path:
    """Where the ``rapidocr`` wheel keeps its ONNX models (found without importing more)."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the rapidocr package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _params(options: EngineOptions, folder: Path) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Global.log_level": "error",  # RapidOCR logs every model path at INFO
        "Global.text_score": float(options.text_score),
        "Global.use_cls": bool(options.use_cls),
        "Det.limit_side_len": options.det_limit_side_len,
        "Det.limit_type": options.det_limit_type,
    }
    for task, name in MODEL_FILES.items():
        path = folder / name
        if not path.is_file():
            raise RuntimeError(f"RapidOCR model {path} is missing (reinstall rapidocr 3.10; "
                               "nothing is downloaded at run time)")
        params[f"{task}.model_path"] = str(path)
    if options.threads is not None:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = options.threads
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    return params


def build_engine(options: EngineOptions) -> OCREngine:
    """A RapidOCR engine on the wheel's models; models load on first use."""
    # Imported by name: mypy, given this plugin's files, names our own package
    # "rapidocr" too (va_actors.plugins is a namespace package) and would
    # resolve a plain ``from rapidocr import RapidOCR`` to it.
    rapidocr = importlib.import_module("rapidocr")
    engine: OCREngine = rapidocr.RapidOCR(params=_params(options, models_dir()))
    return engine

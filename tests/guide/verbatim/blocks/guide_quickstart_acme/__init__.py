from .stt import STT

__all__ = ["STT"]

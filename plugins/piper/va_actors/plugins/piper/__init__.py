"""Offline text-to-speech for va-actors: Piper (neural, joe voice) and espeak-ng.

Both are :class:`va_actors.core.tts.TTS` plugins that synthesise one sentence
at a time in a worker thread and yield 22,050 Hz mono s16 audio, which the TTS
base converts to the output format. Entry points: ``piper.tts`` and
``piper.espeak``. See the plugin README for parameters and licences (GPL-3.0).
"""

from .espeak import EspeakTTS
from .piper_tts import PiperTTS

__all__ = ["EspeakTTS", "PiperTTS"]

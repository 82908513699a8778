"""The human-speech corpus (bench/assets/speech): its manifest as checked dataclasses.

    from bench.corpus import load
    for utt in load():
        print(utt.id, utt.duration_s, utt.length_group, utt.text)

:func:`load` reads ``corpus.json`` and checks every entry: the file exists,
is a 16 kHz mono s16 WAV, and lasts ``duration_s``; a :class:`CorpusError`
names the file and the problem. See bench/assets/speech/LICENSES.md for the
sources and build.py for how the files were made.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets" / "speech"
MANIFEST = ASSETS / "corpus.json"
SAMPLE_RATE = 16_000
CATEGORIES = ("short", "question", "long", "hesitation", "pause", "sentence")
LENGTH_GROUPS = ("under 3 s", "3-8 s", "over 8 s")
DURATION_TOLERANCE_S = 0.002


class CorpusError(ValueError):
    """The manifest or one of its files is not what it should be."""


@dataclass(frozen=True)
class Utterance:
    """One recorded utterance and what is known about it.

    ``speech_s`` is (first, last) speech in the file and ``pauses`` the
    silences inside it, both in seconds from the file's start (Silero VAD,
    32 ms frames).
    """

    id: str
    path: Path
    text: str
    speaker: str
    accent: str | None
    sex: str | None
    duration_s: float
    speech_s: tuple[float, float]
    pauses: tuple[tuple[float, float], ...]
    category: str
    licence: str
    sources: tuple[str, ...]
    spliced: bool

    @property
    def length_group(self) -> str:
        """"under 3 s", "3-8 s" or "over 8 s" (by file duration)."""
        if self.duration_s < 3.0:
            return LENGTH_GROUPS[0]
        return LENGTH_GROUPS[1] if self.duration_s <= 8.0 else LENGTH_GROUPS[2]

    @property
    def longest_pause_s(self) -> float:
        """The longest silence inside the utterance (0 without one)."""
        return max((end - start for start, end in self.pauses), default=0.0)


def load(manifest: Path = MANIFEST) -> list[Utterance]:
    """Every utterance of ``manifest``, each file checked; CorpusError if one is wrong."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{manifest}: cannot read the manifest: {exc}") from exc
    entries = data.get("utterances") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CorpusError(f"{manifest}: no 'utterances' list")
    utterances = [_utterance(manifest.parent, i, entry) for i, entry in enumerate(entries)]
    ids = [u.id for u in utterances]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{manifest}: duplicate ids "
                          f"{sorted({i for i in ids if ids.count(i) > 1})}")
    return utterances


def _utterance(root: Path, index: int, entry: Any) -> Utterance:
    where = f"{root / 'corpus.json'} utterance {index}"
    if not isinstance(entry, dict):
        raise CorpusError(f"{where}: not a JSON object")
    try:
        path = root / str(entry["file"])
        where = f"{path}"
        utt = Utterance(
            id=str(entry["id"]), path=path, text=str(entry["text"]),
            speaker=str(entry["speaker"]), accent=entry.get("accent"), sex=entry.get("sex"),
            duration_s=float(entry["duration_s"]),
            speech_s=(float(entry["speech_s"][0]), float(entry["speech_s"][1])),
            pauses=tuple((float(a), float(b)) for a, b in entry["pauses"]),
            category=str(entry["category"]), licence=str(entry["licence"]),
            sources=tuple(str(s["url"]) for s in entry["source"]),
            spliced=bool(entry.get("spliced", False)))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CorpusError(f"{where}: bad manifest entry ({type(exc).__name__}: {exc})") from exc
    if utt.category not in CATEGORIES:
        raise CorpusError(f"{where}: category {utt.category!r} is not one of {CATEGORIES}")
    _check_wav(utt)
    return utt


def _check_wav(utt: Utterance) -> None:
    if not utt.path.is_file():
        raise CorpusError(f"{utt.path}: missing (utterance {utt.id!r})")
    try:
        with wave.open(str(utt.path)) as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.getnframes()
    except (OSError, EOFError, wave.Error) as exc:
        raise CorpusError(f"{utt.path}: not a readable WAV file: {exc}") from exc
    if (rate, channels, width) != (SAMPLE_RATE, 1, 2):
        raise CorpusError(f"{utt.path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; "
                          f"the corpus is {SAMPLE_RATE} Hz mono 16-bit")
    actual = frames / rate
    if abs(actual - utt.duration_s) > DURATION_TOLERANCE_S:
        raise CorpusError(f"{utt.path}: lasts {actual:.3f} s, the manifest says "
                          f"{utt.duration_s:.3f} s")
    start, end = utt.speech_s
    if not 0.0 <= start < end <= utt.duration_s:
        raise CorpusError(f"{utt.path}: speech_s {utt.speech_s} is outside the file")

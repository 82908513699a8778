"""The speaker model behind every edge: a playout buffer that knows what was heard.

Pure bookkeeping, no clock and no I/O: the edge (a WAV file, a sound card, a
WebRTC peer) decides when samples are played (:meth:`Playout.take`); this
module tracks which reply and which sentence every buffered sample belongs
to, so the edge can say at any moment how much of a reply the user has heard
and which words that covered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from va_actors.core.audio import AudioFormat, PcmData
from va_actors.core.audio.pcm import SampleArray


@dataclass(eq=False)
class Sentence:
    """The audio of one sentence of a reply, as far as it has arrived."""

    key: object
    text: str
    total: int = 0
    """Samples of it received so far."""
    played: int = 0
    """Samples of it played so far."""

    def heard_words(self) -> list[str]:
        """Words heard: all once fully played, else the played share of them (rounded down)."""
        return self.words_within(self.played)

    def words_within(self, samples: int) -> list[str]:
        """Words spoken in its first ``samples``: all of them, or that share (rounded down)."""
        words = self.text.split()
        if samples >= self.total:
            return words
        return words[: len(words) * max(0, samples) // self.total]


@dataclass(eq=False)
class Reply:
    """Everything of one agent reply (one response_id in one epoch)."""

    epoch: int
    response_id: str | None
    sentences: list[Sentence] = field(default_factory=list)
    played: int = 0
    """Samples of the reply played so far."""

    def heard_text(self) -> str:
        """Sentences fully played plus the proportional word prefix of the current one."""
        words: list[str] = []
        for sentence in self.sentences:
            if sentence.played <= 0:
                break
            words += sentence.heard_words()
            if sentence.played < sentence.total:
                break
        return " ".join(words)

    def text_within(self, samples: int) -> str:
        """The words of the reply's first ``samples`` of audio.

        Sentences count in order with all the audio received of them, the
        last one reached in proportion. For a client that reports how much
        it played (a Realtime ``conversation.item.truncate``) rather than a
        speaker that played it here.
        """
        words: list[str] = []
        for sentence in self.sentences:
            if samples <= 0:
                break
            words += sentence.words_within(samples)
            samples -= sentence.total
        return " ".join(words)


@dataclass(eq=False)
class _Piece:
    samples: SampleArray
    reply: Reply
    sentence: Sentence
    offset: int = 0

    @property
    def length(self) -> int:
        return int(self.samples.shape[-1])


class Playout:
    """An ordered buffer of agent audio waiting to be played.

    Chunks are added with their epoch and the header fields a TTS sets:
    ``response_id`` (which reply) and ``text`` (the sentence it speaks; on
    every chunk of the sentence or only on its first one) or ``synthesis_id``
    (tells sentences apart even when their text repeats; a later chunk of the
    same synthesis with a longer ``text`` extends it, as a streamed transcript
    does). Beyond
    ``max_samples`` the oldest chunks are dropped.
    """

    def __init__(self, sample_rate: int, channels: int, max_samples: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_samples = max_samples
        self._pieces: deque[_Piece] = deque()
        self._buffered = 0
        self._tail: Reply | None = None
        self.current: Reply | None = None
        """The reply whose audio was played last (None before any)."""

    @property
    def buffered(self) -> int:
        """Samples (per channel) waiting to be played."""
        return self._buffered

    def add(
        self,
        pcm: PcmData,
        epoch: int,
        response_id: str | None = None,
        text: str | None = None,
        synthesis_id: str | None = None,
    ) -> int:
        """Queue ``pcm`` (already at the buffer's rate, channels, s16).

        Returns the number of chunks dropped to stay within ``max_samples``.
        """
        if pcm.empty:
            return 0
        if (pcm.sample_rate, pcm.channels, pcm.format) != (
            self.sample_rate, self.channels, AudioFormat.S16
        ):
            raise ValueError(f"Playout takes {self.sample_rate} Hz x{self.channels} s16, got {pcm}")
        reply = self._reply_for(epoch, response_id)
        sentence = self._sentence_for(reply, text, synthesis_id)
        sentence.total += pcm.num_samples
        self._pieces.append(_Piece(pcm.samples, reply, sentence))
        self._buffered += pcm.num_samples
        return self._trim()

    def take(self, n: int) -> list[SampleArray]:
        """Play up to ``n`` samples from the head; return them in order."""
        out: list[SampleArray] = []
        while n > 0 and self._pieces:
            piece = self._pieces[0]
            k = min(n, piece.length - piece.offset)
            out.append(piece.samples[..., piece.offset : piece.offset + k])
            piece.offset += k
            piece.sentence.played += k
            piece.reply.played += k
            self.current = piece.reply
            self._buffered -= k
            n -= k
            if piece.offset == piece.length:
                self._pieces.popleft()
        return out

    def drop_older(self, epoch: int) -> tuple[int, Reply | None]:
        """Drop every chunk older than ``epoch``.

        Returns the number of chunks dropped and the reply the first of them
        belonged to (the one cut off), or None when nothing was dropped.
        """
        kept: deque[_Piece] = deque()
        dropped = 0
        first: Reply | None = None
        for piece in self._pieces:
            if piece.reply.epoch < epoch:
                dropped += 1
                first = first or piece.reply
                self._buffered -= piece.length - piece.offset
            else:
                kept.append(piece)
        self._pieces = kept
        if self._tail is not None and self._tail.epoch < epoch:
            self._tail = None
        return dropped, first

    def _reply_for(self, epoch: int, response_id: str | None) -> Reply:
        tail = self._tail
        if tail is None or (tail.epoch, tail.response_id) != (epoch, response_id):
            tail = self._tail = Reply(epoch, response_id)
        return tail

    @staticmethod
    def _sentence_for(reply: Reply, text: str | None, synthesis_id: str | None) -> Sentence:
        last = reply.sentences[-1] if reply.sentences else None
        if synthesis_id is not None:
            key: object = ("synthesis", synthesis_id)
        elif text:
            # Text on every chunk: same text continues the sentence.
            key = last.key if last is not None and last.text == text else ("text", object())
        else:
            # No text: the chunk continues the sentence it follows.
            key = last.key if last is not None else ("untitled",)
        if last is not None and last.key == key:
            if text and len(text) > len(last.text):
                # A synthesis whose text streams in (a realtime model's transcript
                # grows with its audio): the latest, longest text counts.
                last.text = text
            return last
        sentence = Sentence(key, text or "")
        reply.sentences.append(sentence)
        return sentence

    def _trim(self) -> int:
        dropped = 0
        while self._buffered > self.max_samples and len(self._pieces) > 1:
            piece = self._pieces.popleft()
            self._buffered -= piece.length - piece.offset
            dropped += 1
        return dropped


def interleaved_bytes(samples: SampleArray) -> bytes:
    """Channel-major s16 samples as interleaved little-endian bytes."""
    frames = samples if samples.ndim == 1 else samples.T
    return np.ascontiguousarray(frames, dtype="<i2").tobytes()

"""The human-speech corpus is complete and consistent, and the WER it is scored with.

Fast: reads the committed manifest and WAV headers, no model.
"""

from __future__ import annotations

import json
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import ASSETS, LENGTH_GROUPS, MANIFEST, CorpusError, load
from bench.voice_corpus import (
    analyse,
    first_chunk,
    latency_table,
    lost_drops,
    pipeline_ms,
    schedule_ms,
    summary,
)
from bench.wer import normalise, wer, word_errors


def test_the_corpus_is_at_least_30_human_utterances_of_several_speakers() -> None:
    corpus = load()  # checks every file: exists, 16 kHz mono s16, duration as listed
    assert len(corpus) >= 30
    assert len({u.speaker for u in corpus}) >= 8
    assert {"M", "F"} <= {u.sex for u in corpus}
    assert len({u.accent for u in corpus if u.accent}) >= 4
    assert {u.length_group for u in corpus} == set(LENGTH_GROUPS)
    assert {"short", "long", "pause", "question", "hesitation"} <= {u.category for u in corpus}
    assert all(u.licence and u.sources and u.text.strip() for u in corpus)
    # Long ones for the turn-taking work: over 8 s with a natural pause of 300-900 ms.
    assert any(u.duration_s > 8 and 0.3 <= u.longest_pause_s <= 0.9 for u in corpus)


def test_every_file_is_listed_with_its_licence_and_nothing_else_is_there() -> None:
    corpus = load()
    licences = (ASSETS / "LICENSES.md").read_text()
    assert all(f"| {u.path.name} |" in licences for u in corpus)
    assert {p.name for p in ASSETS.glob("*.wav")} == {u.path.name for u in corpus}


def test_pauses_lie_inside_the_speech() -> None:
    for u in load():
        start, end = u.speech_s
        # Trimmed to 0.3 s of silence at each end (re-measured on 32 ms VAD frames).
        assert start == pytest.approx(0.3, abs=0.1), u.id
        assert u.duration_s - end == pytest.approx(0.3, abs=0.1), u.id
        for a, b in u.pauses:
            assert start < a < b < end, u.id


def _one_entry_manifest(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    data = json.loads(MANIFEST.read_text())
    entry = data["utterances"][0]
    shutil.copy(ASSETS / entry["file"], tmp_path / entry["file"])
    (tmp_path / "corpus.json").write_text(json.dumps({"utterances": [entry]}))
    return tmp_path / "corpus.json", entry


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    manifest, entry = _one_entry_manifest(tmp_path)
    (tmp_path / str(entry["file"])).unlink()
    with pytest.raises(CorpusError, match=f"{entry['file']}: missing"):
        load(manifest)


def test_a_file_at_the_wrong_rate_is_named(tmp_path: Path) -> None:
    manifest, entry = _one_entry_manifest(tmp_path)
    with wave.open(str(tmp_path / str(entry["file"])), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.zeros(8000, np.int16).tobytes())
    with pytest.raises(CorpusError, match=f"{entry['file']}: 8000 Hz"):
        load(manifest)


def test_a_duration_that_does_not_match_is_named(tmp_path: Path) -> None:
    manifest, entry = _one_entry_manifest(tmp_path)
    data = json.loads(manifest.read_text())
    data["utterances"][0]["duration_s"] += 1.0
    manifest.write_text(json.dumps(data))
    with pytest.raises(CorpusError, match=f"{entry['file']}: lasts .* the manifest says"):
        load(manifest)


def test_wer_compares_words_as_spoken() -> None:
    assert normalise("Mr. Quilter walked 10 meters in 1813!") == [
        "mister", "quilter", "walked", "ten", "meters", "in", "eighteen", "thirteen"]
    assert normalise("ill-disposed, forty-two") == ["ill", "disposed", "forty", "two"]
    assert normalise("2024 and 305") == ["two", "thousand", "twenty", "four", "and",
                                         "three", "hundred", "five"]
    assert word_errors("Go forward ten meters.", "go forward 10 meters") == 0
    assert word_errors("please call stella", "please call bella now") == 2
    assert wer([("a b c d", "a b c d"), ("yes", "no")]) == pytest.approx(1 / 5)


def _turn(start_ms: float, speech_end_ms: float, detected_ms: float, wall_ms: float) -> dict:
    return {"topic": "turn.turn", "type": "plugin.turn_ended", "ts_ns": int(wall_ms * 1e6),
            "custom": {"start_ms": start_ms, "speech_end_ms": speech_end_ms,
                       "detected_ms": detected_ms}}


def test_turns_transcripts_and_replies_are_matched_to_the_utterance_they_belong_to() -> None:
    corpus = [u for u in load() if u.id in ("librispeech_2412_153948_0000",
                                            "speech_commands_yes")]
    first, second = schedule_ms(corpus, gap_s=5.0)
    long_end = first + corpus[0].speech_s[1] * 1000
    wall = 5_000_000.0  # wall clock ms at audio time 0
    records = [
        # The long utterance: split at its 0.7 s pause, the first reply cut short.
        _turn(first + 300, first + 7500, first + 7800, wall + first + 7800),
        {"type": "plugin.stt_transcript", "text": "If the reader will excuse me,",
         "ts_ns": int((wall + first + 7900) * 1e6)},
        {"topic": "llm.text", "response_id": "a", "text": "Sure", "ts_ns":
         int((wall + first + 8000) * 1e6)},
        {"topic": "llm.text", "response_id": "a", "final": True, "interrupted": True,
         "text": "Sure", "ts_ns": int((wall + first + 8400) * 1e6)},
        _turn(first + 8200, long_end, long_end + 2000, wall + long_end + 2000),
        {"type": "plugin.stt_transcript", "text": "the narrative would be tedious",
         "ts_ns": int((wall + long_end + 2100) * 1e6)},
        {"topic": "llm.text", "response_id": "b", "final": True, "text": "Indeed.",
         "ts_ns": int((wall + long_end + 2500) * 1e6)},
        {"type": "metrics.turn_latency", "total_ms": 2900.0, "response_id": "b",
         "segments_ms": {"turn_detected": 2000.0}, "ts_ns": int((wall + long_end + 2900) * 1e6)},
        # The short one: heard, never answered.
        _turn(second + 400, second + 700, second + 900, wall + second + 900),
        {"type": "plugin.stt_transcript", "text": "Yes.",
         "ts_ns": int((wall + second + 1000) * 1e6)},
        {"on_epoch": 3},
    ]
    long, short = analyse(corpus, [first, second], records)
    assert (long.turns, long.replies, long.superseded) == (2, 2, 1)
    assert long.split and long.held and long.hold_ms == pytest.approx(2000)
    assert long.latency == {"total": 2900.0, "turn_detected": 2000.0}
    assert (long.first_chunk_words, long.first_chunk_ms) == (1, 0.0)  # "Indeed."
    assert (long.word_errors, long.reference_words) == (36 - 11, 36)  # 11 words heard
    assert (short.turns, short.replies, short.word_errors, short.split) == (1, 0, 0, False)
    counts = summary([long, short])["all"]
    assert (counts["splits"], counts["false_waits"], counts["not_one_reply"]) == (1, 1, 2)


def test_a_transcript_the_llm_took_as_the_same_turn_going_on_is_no_split() -> None:
    [utt] = [u for u in load() if u.id == "librispeech_2412_153948_0000"]
    [first] = schedule_ms([utt], gap_s=5.0)
    end = first + utt.speech_s[1] * 1000
    wall = 5_000_000.0

    def at(ms: float) -> int:
        return int((wall + ms) * 1e6)

    records = [
        _turn(first + 300, first + 7500, first + 7800, wall + first + 7800),
        {"type": "plugin.stt_transcript", "text": "If the reader will excuse me,",
         "ts_ns": at(first + 7900)},
        {"topic": "llm.text", "response_id": "a", "text": "Sure", "ts_ns": at(first + 8000)},
        {"topic": "llm.text", "response_id": "a", "final": True, "interrupted": True,
         "text": "Sure", "ts_ns": at(first + 8400)},
        _turn(first + 8200, end, end + 300, wall + end + 300),
        {"type": "plugin.stt_transcript", "text": "the narrative would be tedious",
         "ts_ns": at(end + 400)},
        # The user went on before the first reply was heard: one turn, one reply.
        {"topic": "llm.text", "response_id": "b", "text": "Indeed", "continues": True,
         "ts_ns": at(end + 600)},
        {"topic": "llm.text", "response_id": "b", "final": True, "text": "Indeed.",
         "continues": True, "ts_ns": at(end + 900)},
    ]
    [heard] = analyse([utt], [first], records)
    assert (heard.turns, heard.detector_turns, heard.merged) == (1, 2, 1)
    assert (heard.replies, heard.superseded, heard.split) == (1, 0, False)


def test_first_audio_waits_for_the_words_the_tts_speaks_first() -> None:
    """A reply that opens on a long unpunctuated clause keeps the TTS waiting longer."""
    short = [(0.0, "Sure"), (40.0, " thing, the"), (60.0, " weather is"), (90.0, " sunny."),
             (120.0, " It is")]
    # "Sure thing," is too short a clause; "sunny." ends a sentence once more follows.
    assert first_chunk(short) == (6, 120.0)
    said = re.findall(r"\s*\S+", "This is just another example of how language can be "
                      "used to convey the depth of feeling")
    long = [(10.0 * i, w) for i, w in enumerate(said)]
    words, ms = first_chunk(long) or (0, 0.0)
    assert words == 16 and ms > 150  # cut at the 16th word: no clause or phrase break
    assert first_chunk([(0.0, "Well"), (30.0, " done")]) == (2, 30.0)  # said whole at its end
    assert first_chunk([]) is None


def test_the_pipeline_s_own_segments_leave_first_audio_and_audio_out_out() -> None:
    corpus = load()[:2]
    heard = analyse(corpus, schedule_ms(corpus, 5.0), [])
    for h, (turn, text, token) in zip(heard, [(224, 2, 60), (608, 4, 80)], strict=True):
        h.latency = {"total": 900.0, "turn_detected": turn, "final_transcript": text,
                     "first_token": token, "first_audio": 500.0, "audio_out": 3.0}
    assert pipeline_ms(latency_table(heard)) == (224 + 608) / 2 + (2 + 4) / 2 + (60 + 80) / 2
    assert pipeline_ms(latency_table([])) is None


def test_only_drops_other_than_stale_output_make_a_run_suspect() -> None:
    """Barge-in and resumes drop the old epoch's agent output: that is not lost user audio."""
    line = ("pipeline 'voice-agent' stopped (every source finished): restarts 0, epoch 27, "
            "drops 96 (stale 90, overflow 6)")
    assert lost_drops("voice-agent: 8/8 up  drops 96\n" + line) == 6
    assert lost_drops(line.replace(" (stale 90, overflow 6)", "")) == 96
    assert lost_drops("no stop line") == 0

"""Replay of missed input, the parts without processes: ring, merge, last-seen file, inputs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from va_actors.core.audio.pcm import PcmData
from va_actors.runtime.host.inputs import Inputs
from va_actors.runtime.host.replay_client import LOOKBACK, ReplayClient
from va_actors.runtime.replay.merge import ReplayMerge
from va_actors.runtime.replay.protocol import HANDLING_REPLAY, REPLAY_TO, ReplayEnd, ReplayRequest
from va_actors.runtime.replay.ring import ReplayRing, RingLimits
from va_actors.runtime.replay.seen import SeenFile, SeenState, read_seen
from va_actors.runtime.spec import ActorSpec, InputSpec
from va_actors.wire.codec import (
    Message,
    decode,
    encode_audio,
    encode_control,
    encode_text,
    with_fields,
)
from va_actors.wire.messages import Control, Kind, TextChunk

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frames(seq: int, size: int = 10) -> list[bytes]:
    return [b"mic.audio", b"h" * 4, bytes(size)]


# -- the ring ------------------------------------------------------------------------------
def test_the_ring_forgets_what_is_older_than_its_seconds() -> None:
    clock = Clock()
    ring = ReplayRing(RingLimits(seconds=1.0, max_bytes=10**6), started_ns=0, clock=clock)
    for seq in range(100):  # 20 ms apart: 2 s of messages
        ring.append(seq, 1_000 + seq, frames(seq))
        clock.now += 0.02
    found = ring.lookup(after=9, since_ns=1_009)
    assert [e.seq for e in found.entries] == list(range(50, 100))
    assert found.missed == 40  # 10..49 are gone
    assert ring.lookup(after=60, since_ns=1_060).missed == 0


def test_the_ring_keeps_at_most_its_bytes_and_counts_the_rest_too_old() -> None:
    ring = ReplayRing(RingLimits(seconds=60, max_bytes=10 * 30), started_ns=0, clock=Clock())
    for seq in range(20):
        ring.append(seq, 1_000 + seq, frames(seq, size=16))  # 9 + 4 + 16 = 29 bytes each
    assert ring.nbytes <= 300 and len(ring) == 10
    found = ring.lookup(after=4, since_ns=1_004)
    assert [e.seq for e in found.entries] == list(range(10, 20))
    assert found.missed == 5
    assert found.entries[0].frames == tuple(frames(10, size=16))


def test_a_lookup_takes_only_what_came_after_the_seq() -> None:
    ring = ReplayRing(RingLimits(), started_ns=0, clock=Clock())
    for seq in range(10):
        ring.append(seq, 1_000 + seq, frames(seq))
    found = ring.lookup(after=6, since_ns=1_006)
    assert ([e.seq for e in found.entries], found.after, found.missed) == ([7, 8, 9], 6, 0)
    assert ring.lookup(after=9, since_ns=1_009).entries == []


def test_a_producer_that_restarted_replays_its_whole_incarnation() -> None:
    ring = ReplayRing(RingLimits(), started_ns=5_000, clock=Clock())
    for seq in range(3):
        ring.append(seq, 6_000 + seq, frames(seq))
    # The consumer's last message (seq 40) came from the previous incarnation.
    found = ring.lookup(after=40, since_ns=4_000)
    assert (found.after, [e.seq for e in found.entries], found.missed) == (-1, [0, 1, 2], 0)


def test_a_source_never_heard_from_replays_what_came_since_the_consumer_started() -> None:
    ring = ReplayRing(RingLimits(), started_ns=0, clock=Clock())
    for seq in range(6):
        ring.append(seq, 1_000 + seq, frames(seq))
    found = ring.lookup(after=-1, since_ns=1_003)
    assert [e.seq for e in found.entries] == [3, 4, 5] and found.missed == 0


def test_a_disabled_ring_keeps_nothing_and_counts_everything_missed() -> None:
    ring = ReplayRing(RingLimits(seconds=0), started_ns=0, clock=Clock())
    for seq in range(5):
        ring.append(seq, 1_000 + seq, frames(seq))
    found = ring.lookup(after=1, since_ns=1_001)
    assert found.entries == [] and found.missed == 3


# -- the merge -------------------------------------------------------------------------------
def msg(seq: int, source: str = "mic", topic: str = "mic.audio", ts: int | None = None) -> Message:
    return Message(topic, Kind.TEXT, seq, 1_000 + seq if ts is None else ts, 0, source,
                   {"text": str(seq)})


def end(first: int, last: int, missed: int = 0, after: int = 0) -> ReplayEnd:
    count = 0 if first < 0 else last - first + 1
    return ReplayEnd(after, first, last, count, missed)


def test_the_merge_hands_on_the_replay_then_the_held_live_input_without_duplicates() -> None:
    merge = ReplayMerge()
    merge.begin("mic.audio", 1, deadline=10)
    held = [merge.live(msg(s)) for s in (8, 9, 10)]  # live arrived before the answer
    assert held == [[], [], []]
    for seq in range(5, 11):
        merge.replayed(msg(seq))
    out = merge.end("mic.audio", "mic", end(5, 10, missed=2, after=2))
    assert [m.seq for m in out] == [5, 6, 7, 8, 9, 10]
    assert merge.pending() == []
    assert [m.seq for m in merge.live(msg(11))] == [11]
    c = merge.counters
    assert (c.replayed_in, c.duplicates, c.too_old_in) == (6, 3, 2)


def test_live_input_newer_than_the_replay_follows_it_in_order() -> None:
    merge = ReplayMerge()
    merge.begin("mic.audio", 1, deadline=10)
    for seq in (3, 4):
        merge.replayed(msg(seq))
    assert merge.live(msg(5)) == []  # sent after the answer, arrived meanwhile
    out = merge.end("mic.audio", "mic", end(3, 4))
    assert [m.seq for m in out] == [3, 4, 5]


def test_an_answer_with_a_hole_is_dropped_and_the_next_one_counts() -> None:
    merge = ReplayMerge()
    merge.begin("mic.audio", 1, deadline=10)
    for seq in (7, 8):  # 5 and 6 went out before the subscription was live
        merge.replayed(msg(seq))
    assert merge.end("mic.audio", "mic", end(5, 8)) == []
    assert merge.pending() == ["mic.audio"] and merge.counters.retries == 1
    for seq in range(5, 9):
        merge.replayed(msg(seq))
    assert [m.seq for m in merge.end("mic.audio", "mic", end(5, 8))] == [5, 6, 7, 8]
    merge.replayed(msg(5))  # a third answer, to a request asked once more
    assert merge.counters.duplicates == 1


def test_every_producer_instance_answers_before_the_topic_goes_on() -> None:
    merge = ReplayMerge()
    merge.begin("mic.audio", 2, deadline=10)
    merge.replayed(msg(1, source="mic-0"))
    assert merge.end("mic.audio", "mic-0", end(1, 1)) == []
    assert merge.live(msg(2, source="mic-0")) == []
    out = merge.end("mic.audio", "mic-1", end(-1, -1))
    assert [(m.source, m.seq) for m in out] == [("mic-0", 1), ("mic-0", 2)]


def test_a_replay_past_its_deadline_lets_the_held_input_go() -> None:
    merge = ReplayMerge()
    merge.begin("mic.audio", 1, deadline=10)
    merge.live(msg(4))
    assert merge.expire(9.9) == []
    assert [m.seq for m in merge.expire(10)] == [4]
    assert merge.counters.timeouts == 1 and merge.pending() == []


def test_a_held_message_of_a_producer_restarted_meanwhile_is_not_a_duplicate() -> None:
    merge = ReplayMerge()
    merge.begin("mic.audio", 1, deadline=10)
    merge.replayed(msg(30, ts=5_000))
    merge.live(msg(0, ts=9_000))  # seq 0 again, but newer: the new incarnation's first
    out = merge.end("mic.audio", "mic", end(30, 30))
    assert [(m.seq, m.ts_ns) for m in out] == [(30, 5_000), (0, 9_000)]


# -- the last-seen file ------------------------------------------------------------------------
def test_the_last_seen_file_survives_its_writer_and_starts_from_the_previous_numbers(
        tmp_path: Path) -> None:
    path = tmp_path / "stt.seen"
    writer = SeenFile(path, SeenState(123, {("mic", "mic.audio"): (7, 70)}))
    writer.update(("mic", "mic.audio"), 8, 80)
    writer.update(("llm-1", "llm.text"), 3, 30)
    # No close, no flush: another process reads what the mapping holds.
    state = read_seen(path)
    assert state is not None and state.since_ns == 123
    assert state.seen == {("mic", "mic.audio"): (8, 80), ("llm-1", "llm.text"): (3, 30)}
    assert state.by_topic() == {"mic.audio": {"mic": (8, 80)}, "llm.text": {"llm-1": (3, 30)}}
    writer.close()
    assert read_seen(tmp_path / "missing.seen") is None
    (tmp_path / "bad.seen").write_bytes(b"x" * 20)
    assert read_seen(tmp_path / "bad.seen") is None


# -- the input path: replayed input goes through the same checks --------------------------
class Owner:
    instance = "tts"

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch
        self.drops: dict[str, int] = {}
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def epoch(self) -> int:
        return self._epoch

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    def report_error(self, error: BaseException, context: str) -> None:
        pass

    def input_failed(self, error: BaseException, context: str) -> None:
        raise AssertionError(f"{context}: {error}")

    def critical(self, coro: Any, name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro))


def spec_of(tmp_path: Path, resume: dict[str, Any], *, epoch_bound: bool = False) -> ActorSpec:
    return ActorSpec(actor="tts", instance="tts", plugin="x:Y", data_endpoint="ipc:///tmp/a",
                     sys_pub="ipc:///tmp/b", sys_pull="ipc:///tmp/c",
                     inputs=[InputSpec("llm.text", ["ipc:///tmp/llm"], epoch_bound=epoch_bound,
                                       replay_s=5.0)],
                     seen_path=str(tmp_path / "tts.seen"), resume=resume)


def text_frames(seq: int, epoch: int, replay_to: str | None = None) -> list[Any]:
    extra = {REPLAY_TO: replay_to} if replay_to else None
    return encode_text("llm.text", TextChunk(f"t{seq}"), seq=seq, epoch=epoch, source="llm",
                       ts_ns=1_000 + seq, extra=extra)


def test_agent_output_is_not_replayed(tmp_path: Path) -> None:
    """Epoch-bound input (what the agent says) is said again from what was heard instead."""
    sent: list[Any] = []
    spec = spec_of(tmp_path, {"since_ns": 1, "seen": {"llm.text": {"llm": [3, 1_003]}}},
                   epoch_bound=True)
    client = ReplayClient(spec, lambda op, args: sent.append(op))
    client.begin()
    client.tick()
    assert not client.waiting and sent == []
    client.close()


async def test_replayed_input_comes_before_the_held_live_input_once_each(
        tmp_path: Path) -> None:
    owner = Owner(epoch=2)
    got: list[tuple[int, int]] = []
    replaying: list[tuple[int, bool]] = []

    async def handle(m: Message) -> None:
        got.append((m.seq, m.epoch))
        replaying.append((m.seq, HANDLING_REPLAY.get()))

    spec = spec_of(tmp_path, {"since_ns": 1, "seen": {"llm.text": {"llm": [3, 1_003]}}})
    sent: list[tuple[str, dict[str, Any]]] = []
    inputs = Inputs(owner, spec, asyncio.get_running_loop(), handle)
    clock = Clock()
    client = inputs.replay = ReplayClient(spec, lambda op, args: sent.append((op, args)),
                                          clock=clock)
    client.begin()
    client.tick()
    assert sent == []  # the subscription gets a moment to reach the producer
    clock.now += 0.05
    client.tick()
    assert client.waiting and sent[0][0] == "replay"
    request = ReplayRequest.from_args(sent[0][1])
    assert request.seen == {"llm": (3, 1_003)} and request.to == "tts"
    inputs.accept(text_frames(7, epoch=2))  # live, held
    inputs.accept(text_frames(4, epoch=1, replay_to="stt"))  # someone else's: ignored
    for seq, epoch in ((4, 1), (5, 2), (6, 2), (7, 2)):
        inputs.accept(text_frames(seq, epoch, replay_to="tts"))
    assert got == []
    marker = encode_control("llm.text", Control("replay_end", ReplayEnd(3, 4, 7, 4, 0).to_args()),
                            seq=7, epoch=0, source="llm", extra={REPLAY_TO: "tts"})
    inputs.accept(marker)
    await asyncio.sleep(0.05)
    assert got == [(4, 1), (5, 2), (6, 2), (7, 2)]  # replay, then the held 7 once
    assert owner.drops == {}
    assert client.merge.counters.replayed_in == 4 and client.merge.counters.duplicates == 1
    seen = read_seen(tmp_path / "tts.seen")
    assert seen is not None and seen.seen[("llm", "llm.text")] == (7, 1_007)
    inputs.accept(text_frames(8, epoch=2))  # live again
    await asyncio.sleep(0.05)
    # What the driver publishes while handling replayed input is marked (the host adds
    # REPLAYED), so a turn start heard again is not taken for a barge-in now.
    assert replaying == [(4, True), (5, True), (6, True), (7, True), (8, False)]
    for task in owner.tasks:
        task.cancel()
    await asyncio.gather(*owner.tasks, return_exceptions=True)
    client.close()


def test_a_first_start_asks_for_no_replay(tmp_path: Path) -> None:
    sent: list[Any] = []
    client = ReplayClient(spec_of(tmp_path, {}), lambda op, args: sent.append(op))
    client.begin()
    client.tick()
    assert not client.waiting and sent == []
    client.close()


def test_the_codec_carries_the_replay_mark_and_audio_decodes_as_sent() -> None:
    pcm = PcmData.from_bytes(bytes(640), sample_rate=16000, format="s16", channels=1)
    sent = encode_audio("mic.audio", pcm, seq=3, epoch=0, source="mic")
    again = decode(with_fields(sent, {REPLAY_TO: "stt"}))
    assert again.fields[REPLAY_TO] == "stt" and again.seq == 3
    assert bytes(again.payloads[0]) == bytes(640)


def test_va_launch_status_shows_replay_counters_of_the_instances_that_have_some() -> None:
    from va_actors.cli.status import format_table
    rows = [{"instance": "mic", "state": "running", "replay": {"replayed_out": 65}},
            {"instance": "stt", "state": "running",
             "replay": {"replayed_in": 65, "too_old_in": 3, "duplicates": 2}},
            {"instance": "llm", "state": "running", "replay": {}}]
    text = format_table({"pipeline": "voice", "supervisor_pid": 1, "epoch": 0,
                         "run_dir": "/run", "metrics": True, "instances": rows})
    table = text.split("REPLAY", 1)[1].splitlines()
    assert "TOO OLD IN" in table[0]
    assert table[1].split() == ["mic", "65", "0", "0", "0", "0", "0"]
    assert table[2].split() == ["stt", "0", "0", "65", "3", "2", "0"]
    assert len(table) == 3  # llm replayed nothing: no row


def test_a_hold_keeps_an_utterance_replayable_from_a_second_before_it(tmp_path: Path) -> None:
    """STT / turn detection hold input during a turn: a restart hears all of it again."""
    client = ReplayClient(spec_of(tmp_path, {}), lambda op, args: None)
    key = ("llm", "llm.text")

    def hand_on(seqs: range) -> None:
        for seq in seqs:
            client.handed_on(decode([bytes(f) for f in text_frames(seq, 0)]))

    hand_on(range(100))
    assert client.seen[key] == (99, 1_099)
    client.hold(True)  # the turn started (detected a moment into the speech)
    assert client.seen[key] == (100 - LOOKBACK - 1, 1_000 + 100 - LOOKBACK)
    hand_on(range(100, 120))
    assert client.seen[key][0] == 100 - LOOKBACK - 1  # a restart would get 50..119
    assert read_seen(tmp_path / "tts.seen").seen[key][0] == 100 - LOOKBACK - 1  # type: ignore[union-attr]
    client.hold(False)  # transcribed
    assert client.seen[key] == (119, 1_119)
    client.close()

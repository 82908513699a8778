"""The session follower's epoch rules: barge-in, and a user resuming before the agent spoke."""

from __future__ import annotations

from typing import Any

from va_actors.runtime.supervisor.follower import SessionFollower

STARTED = {"event": {"type": "plugin.turn_started"}}
ENDED = {"event": {"type": "plugin.turn_ended"}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def follower(clock: Clock, grace_s: float = 3.0) -> tuple[SessionFollower, list[str]]:
    bumps: list[str] = []

    def bump(reason: str, *, resume: bool = False) -> int:
        bumps.append(f"{reason} [resume]" if resume else reason)
        return len(bumps)

    return SessionFollower(bump, lambda reason: None, sources=["mic"],
                           resume_grace_s=grace_s, clock=clock), bumps


def turn(f: SessionFollower, fields: dict[str, Any]) -> None:
    f._on_message("turn", "turn", "turn.turn", fields)


def playback(f: SessionFollower, playing: bool, played_ms: float = 0.0) -> None:
    f._on_message("playback", "speaker", "speaker.playback",
                  {"playing": playing, "event": {"played_ms": played_ms}})


def started(start_ms: float, detected_ms: float) -> dict[str, Any]:
    """A TurnStartedEvent as Silero reports it: the speech began before it was detected."""
    return {"event": {"type": "plugin.turn_started",
                      "custom": {"start_ms": start_ms, "detected_ms": detected_ms}}}


def speech_into_reply(reply_after_s: float, speech_after_s: float,
                      report_at_s: float | None = None) -> list[str]:
    """The bumps when a reply's first audio plays ``reply_after_s`` after the end of
    turn and the detector reports the user's next start ``speech_after_s`` after that
    (Silero's 224 ms after the speech began). ``report_at_s``: a later playback report,
    that far into the reply."""
    clock = Clock()
    f, bumps = follower(clock)
    playback(f, False)
    turn(f, ENDED)
    clock.now += reply_after_s
    playback(f, True)
    if report_at_s is not None:
        clock.now += report_at_s
        playback(f, True, played_ms=report_at_s * 1000)
        speech_after_s -= report_at_s
    clock.now += speech_after_s
    turn(f, started(9000.0, 9224.0))
    return bumps


def test_a_turn_starting_soon_after_its_end_before_agent_audio_cancels_the_reply() -> None:
    clock = Clock()
    f, bumps = follower(clock)
    playback(f, False)  # a sink reports: the agent is silent
    turn(f, STARTED)
    assert bumps == []  # the user just talks
    turn(f, ENDED)
    clock.now += 0.7  # a 0.7 s pause in mid-thought; the reply is being prepared
    turn(f, STARTED)
    assert len(bumps) == 1 and bumps[0].startswith("resume on turn.turn")
    assert bumps[0].endswith("before the agent spoke [resume]")


def test_speech_that_began_as_the_agent_s_first_audio_did_is_a_resume() -> None:
    """A 0.7 s pause outlasts a fast reply: the user went on 0.25 s into its audio."""
    clock = Clock()
    f, bumps = follower(clock)
    playback(f, False)
    turn(f, ENDED)
    clock.now += 0.45
    playback(f, True, played_ms=20.0)  # the reply's first audio began 20 ms ago
    clock.now += 0.45  # the detector reports the start 224 ms into the speech
    turn(f, started(9184.0, 9408.0))
    assert bumps == ["resume on turn.turn 0.9 s after its end of turn, "
                     "246 ms into the agent's first audio [resume]"]


def test_speech_that_began_half_a_second_into_a_fast_reply_is_still_a_resume() -> None:
    """JFK's 1.06 s pause in the corpus: the user went on ~0.53 s into the reply's audio,
    too soon to be answering it (the 0.5 s window of before split it)."""
    bumps = speech_into_reply(0.5, 0.75)  # speech began 0.53 s into the reply
    assert bumps == ["resume on turn.turn 1.2 s after its end of turn, "
                     "526 ms into the agent's first audio [resume]"]


def test_speech_that_began_well_into_the_reply_is_a_barge_in() -> None:
    # Speech began 0.88 s into the reply; the later report does not move the onset.
    bumps = speech_into_reply(0.45, 1.1, report_at_s=0.8)
    assert bumps == ["turn started on turn.turn"]


def test_after_agent_audio_or_past_the_grace_a_new_turn_is_not_a_resume() -> None:
    clock = Clock()
    f, bumps = follower(clock)
    playback(f, False)
    turn(f, ENDED)
    playback(f, True)  # the reply started playing ...
    playback(f, False)  # ... and finished
    clock.now += 0.5
    turn(f, STARTED)
    assert bumps == []
    turn(f, ENDED)
    clock.now += 3.5  # longer than the grace: a new question, not a continuation
    turn(f, STARTED)
    assert bumps == []


def test_barge_in_still_bumps_while_the_agent_plays() -> None:
    clock = Clock()
    f, bumps = follower(clock)
    playback(f, True)
    turn(f, STARTED)
    assert bumps == ["turn started on turn.turn"]


def test_a_grace_of_zero_turns_resuming_off() -> None:
    clock = Clock()
    f, bumps = follower(clock, grace_s=0.0)
    playback(f, False)
    turn(f, ENDED)
    clock.now += 0.2
    turn(f, STARTED)
    assert bumps == []


def test_a_turn_start_heard_again_from_replayed_input_is_not_a_barge_in() -> None:
    """A turn detector restarted mid-question re-hears it: the agent answering now stays."""
    clock = Clock()
    f, bumps = follower(clock)
    playback(f, True)
    turn(f, {**STARTED, "replayed": True})
    assert bumps == []
    turn(f, STARTED)  # the user speaking now still interrupts
    assert len(bumps) == 1

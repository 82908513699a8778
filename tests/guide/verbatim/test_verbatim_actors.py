"""The guide's plugins as actors: each category's block in a small real pipeline.

Every actor is its own OS process under a real supervisor
(:func:`va_actors.testing.supervised`), and everything between them goes
through ZeroMQ and the wire codec. The guide's classes are loaded by module
reference, as a user's installed plugin would be; the providers are the
stand-ins of ``guide_providers`` and ``acme_sdk`` (no models, no network).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from guide_actors import PYTHONPATH

from va_actors.runtime.config import load_pipeline
from va_actors.testing import read_jsonl, supervised, until

RECORDER = "guide_actors:GuideRecorder"
START_S = 45
"""Start-up bound: a shared 2-core machine under load starts Python processes slowly."""


def actor(name: str, plugin: str, inputs: list[str] | None = None, **params: Any) -> str:
    lines = [f"[[actor]]\nname = {json.dumps(name)}\nplugin = {json.dumps(plugin)}",
             f"env = {{ PYTHONPATH = {json.dumps(PYTHONPATH)} }}"]
    if inputs:
        lines.append(f"inputs = {json.dumps(inputs)}")
    if params:
        items = ", ".join(f"{k} = {json.dumps(v)}" for k, v in params.items())
        lines.append(f"params = {{ {items} }}")
    return "\n".join(lines) + "\n"


def pipeline(tmp_path: Path, *actors: str, on_give_up: str = "stop") -> Any:
    path = tmp_path / "guide.toml"
    path.write_text(f'[pipeline]\nname = "guide"\non_give_up = "{on_give_up}"\n\n'
                    + "\n".join(actors))
    return load_pipeline(path)


async def recorded(path: Path, enough: Callable[[list[dict[str, Any]]], bool],
                   what: str, timeout: float = 20) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        records = read_jsonl(path) if path.exists() else []
        return records if enough(records) else None

    result: list[dict[str, Any]] = await until(ready, timeout, what)
    return result


def on(records: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [r for r in records if r["topic"] == topic]


@pytest.mark.timeout(150)
async def test_stt_blocks_as_actors_publish_every_transcript(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    stts = {"quick": "guide_quickstart_acme:STT", "pyd": "guide_actors:GuideSTT",
            "dc": "guide_actors:GuideSTT", "slots": "guide_actors:GuideSTT",
            "pool": "guide_actors:ThreadPoolSTT"}
    params: dict[str, dict[str, Any]] = {
        "quick": {"api_key": "acme-key", "model": "acme-2"}, "pyd": {"response_kind": "pydantic"},
        "dc": {"response_kind": "dataclass"}, "slots": {"response_kind": "slots"}, "pool": {}}
    config = pipeline(
        tmp_path,
        actor("mic", "tests.actors.tone:ToneSource", rate=48000, channels=2, count=10),
        *(actor(name, ref, ["mic.audio"], **params[name]) for name, ref in stts.items()),
        actor("rec", RECORDER, [f"{name}.transcript" for name in stts], path=str(rec)))
    async with supervised(config, tmp_path / "run", start_timeout_s=START_S):
        records = await recorded(
            rec, lambda rs: all(len(on(rs, f"{n}.transcript")) >= 10 for n in stts),
            "ten transcripts from each STT")
    for name in stts:
        texts = {r["text"] for r in on(records, f"{name}.transcript")}
        if name == "pool":  # that block sends pcm.data as it came: 960 frames x 2 channels
            assert texts == {"heard 1920 samples"}
        else:  # 48 kHz stereo 20 ms, resampled to 16 kHz mono
            assert texts == {"heard 320 samples"}, name
    quick = on(records, "quick.transcript")[0]
    assert quick["type"] == "plugin.stt_transcript" and quick["confidence"] == 0.91
    assert quick["response"]["remote"] == "Transcription"
    assert quick["response"]["data"]["words"][0]["word"] == "heard"
    assert on(records, "pyd.transcript")[0]["response"]["data"]["created_at"] == \
        "2026-11-25T09:30:00+00:00"
    dc = on(records, "dc.transcript")[0]["response"]
    assert dc["remote"] == "DataclassTranscript" and dc["data"]["words"][0]["end"] == 0.2
    slots = on(records, "slots.transcript")[0]["response"]
    assert slots["remote"] == "SlotsTranscript" and "confidence=0.7" in slots["repr"]
    assert on(records, "pool.transcript")[0]["response"]["data"]["samples"] == 1920


@pytest.mark.timeout(120)
async def test_tts_blocks_as_actors_speak_text_in_the_output_format(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    text = "Hello there. How are you today?"
    config = pipeline(
        tmp_path,
        actor("say", "guide_actors:SayOnce", text=text, as_transcript=False),
        actor("base", "guide_actors:GuideTTS", ["say.text"]),
        actor("fmt", "guide_actors:OutputFormatTTS", ["say.text"]),
        actor("rec", RECORDER, ["base.audio", "fmt.audio"], path=str(rec)))

    def seconds(records: list[dict[str, Any]], topic: str) -> float:
        return sum(r["samples"] for r in on(records, topic)) / 16000

    async with supervised(config, tmp_path / "run", start_timeout_s=START_S):
        records = await recorded(
            rec, lambda rs: all(seconds(rs, t) >= 0.30 for t in ("base.audio", "fmt.audio")),
            "both sentences from both TTS actors")
    for topic in ("base.audio", "fmt.audio"):
        audio = on(records, topic)
        assert {(r["pcm"], r["channels"]) for r in audio} == {(16000, 1)}  # from 24 kHz
        # 10 ms per character: "Hello there." and "How are you today?"
        assert seconds(records, topic) == pytest.approx(0.30, abs=0.01)


@pytest.mark.timeout(120)
async def test_llm_block_as_an_actor_replies_and_calls_its_tool(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = pipeline(
        tmp_path,
        actor("user", "guide_actors:SayOnce", text="What is the weather in Boulder?"),
        actor("llm", "guide_actors:GuideLLM", ["user.transcript"]),
        actor("rec", RECORDER, ["llm.text", "llm.events"], path=str(rec)))
    async with supervised(config, tmp_path / "run", start_timeout_s=START_S):
        records = await recorded(rec, lambda rs: any(r.get("final") for r in rs)
                                 and any(r.get("type") == "plugin.llm.tool.end" for r in rs),
                                 "the reply and the tool's end")
    (reply,) = [r for r in on(records, "llm.text") if r["final"]]
    assert reply["text"] == "Let me check the weather in Boulder."
    (end,) = [r for r in records if r.get("type") == "plugin.llm.tool.end"]
    assert end["success"] is True and end["result"] == {"city": "Boulder", "sky": "sunny",
                                                        "celsius": 21}


@pytest.mark.timeout(120)
async def test_vlm_block_as_an_actor_answers_about_the_frames_it_watched(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = pipeline(
        tmp_path,
        actor("cam", "tests.actors.frames:FrameSource", fps=10),
        actor("user", "guide_actors:SayOnce", text="What do you see?", after_s=1.5),
        actor("vlm", "guide_actors:GuideVLM", ["cam.video", "user.transcript"], fps=5),
        actor("rec", RECORDER, ["vlm.text"], path=str(rec)))
    async with supervised(config, tmp_path / "run", start_timeout_s=START_S):
        records = await recorded(rec, lambda rs: any(r.get("final") for r in rs), "the answer")
    (answer,) = [r for r in records if r["final"]]
    words = answer["text"].split()
    assert answer["text"].endswith("frames of 320x240.") and int(words[2]) >= 3


@pytest.mark.timeout(120)
async def test_realtime_block_as_an_actor_takes_audio_and_speaks(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = pipeline(
        tmp_path,
        actor("mic", "tests.actors.tone:ToneSource", rate=16000, count=20),
        actor("rt", "guide_actors:GuideRealtime", ["mic.audio"]),
        actor("rec", RECORDER, ["rt.audio"], path=str(rec)))
    async with supervised(config, tmp_path / "run", start_timeout_s=START_S):
        records = await recorded(rec, lambda rs: len(rs) >= 12, "four spoken replies")
    assert {(r["pcm"], r["channels"], r["samples"]) for r in records} == {(24000, 1, 480)}


@pytest.mark.timeout(120)
async def test_processor_as_an_actor_sends_the_custom_event_block(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = pipeline(
        tmp_path,
        actor("cam", "tests.actors.frames:FrameSource", fps=10),
        actor("proc", "guide_actors:GuideProcessor", ["cam.video"], fps=5),
        actor("rec", RECORDER, ["proc.state"], path=str(rec)))
    async with supervised(config, tmp_path / "run", start_timeout_s=START_S):
        records = await recorded(rec, lambda rs: len(rs) >= 3, "three custom events")
    # The recorder never imported the plugin: the event arrives as data, by its type.
    assert {(r["type"], r["data"]["custom_field"]) for r in records} == {("acme.custom", "value")}


@pytest.mark.timeout(120)
async def test_permanent_error_block_gives_the_actor_up_without_retrying(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    config = pipeline(
        tmp_path,
        actor("mic", "tests.actors.tone:ToneSource", rate=16000),
        actor("stt", "guide_actors:KeylessSTT", ["mic.audio"]))
    running = supervised(config, tmp_path / "run", start=False, start_timeout_s=START_S)
    async with running as (sup, log):
        gave_up = await log.wait("stt", "gave_up", timeout=START_S)
        await until(lambda: sup.stop_reason, START_S, "the pipeline to stop (on_give_up = stop)")
    assert gave_up["exit_code"] == 78 and gave_up["restarts"] == 0  # a configuration error
    assert "configuration error" in gave_up["reason"]
    # the plugin's own message is in the actor's log line
    assert "KeylessSTT with params []: ValueError: API key required" in capfd.readouterr().err
    assert "restarting" not in [s["state"] for s in log.of("stt")]

"""The actor spec: everything one actor host process needs to run one instance.

The supervisor writes an :class:`ActorSpec` as JSON into the run directory and
starts ``python -m va_actors.runtime.host <spec.json>``; the host reads it
back with :meth:`ActorSpec.read`. Parsing is strict (unknown keys, wrong types
and impossible values raise :class:`SpecError` naming the field), so a
supervisor/host mismatch fails loudly at start-up instead of misbehaving.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from va_actors.runtime.transport import TransportError, TransportSpec
from va_actors.wire import topics

__all__ = ["DISPATCH_CATEGORY", "ActorSpec", "InputSpec", "SpecError"]

DISPATCH_CATEGORY = "dispatch"
"""Category of the dispatcher instance of a replicated actor (runtime/dispatcher.py)."""


class SpecError(ValueError):
    """An actor spec is malformed; the message names the field and what is wrong."""


@dataclass
class InputSpec:
    """One input of an instance: a topic and the data endpoints that publish it.

    Attributes:
        topic: ``<actor>.<stream>`` to subscribe to (exactly this topic).
        endpoints: XPUB endpoints of every instance publishing it (all replicas
            of the producing actor), e.g. ``["ipc:///run/dir/mic.sock"]``.
        epoch_bound: drop messages of an older epoch. True for what the agent
            says (LLM text, TTS and Realtime audio); False for what the user
            says (microphone audio, transcripts, turns, video), so that the
            user's first words of a barge-in are never dropped by the bump
            they cause.
        fps: for video, the frame rate this consumer wants: frames are handed
            on at most this often, always the newest (the rest are counted as
            ``throttled``). None: as fast as the consumer takes them.
        max_age_ms: staleness bound: a message older than this (from its
            publish time) when the consumer would get it is dropped
            (``expired``) instead. None: no bound.
        replay_s: the producer keeps this much for a restarted consumer
            (its ``replay_s``; 0: no replay). A restarted instance asks for
            what it missed and holds this input's live messages meanwhile.
    """

    topic: str
    endpoints: list[str] = field(default_factory=list)
    epoch_bound: bool = True
    fps: float | None = None
    max_age_ms: float | None = None
    replay_s: float = 0.0


@dataclass
class ActorSpec:
    """How to run one actor instance (one OS process).

    Attributes:
        actor: actor name; every topic it publishes is ``<actor>.<stream>``.
        instance: instance name: ``actor``, or ``<actor>-<i>`` for a replica.
        plugin: plugin reference, ``package.module:Class`` or an entry-point name.
        data_endpoint: the XPUB endpoint this instance binds.
        sys_pub: the supervisor's PUB endpoint (``sys.epoch``, ``sys.ctl``).
        sys_pull: the supervisor's PULL endpoint (``sys.report``).
        replica: replica index (0 when the actor is not replicated).
        params: keyword arguments for the plugin class.
        category: plugin category (``va_actors.runtime.plugins.Category``
            value); empty means the host derives it from the class.
        inputs: what to subscribe to, and where.
        expected_subscribers: output topic -> number of subscribers to wait
            for before reporting ``ready`` (the start-up handshake).
        heartbeat_interval_s: seconds between heartbeats.
        audio_queue_ms: bound of each audio input queue, in ms of audio
            (drop-oldest beyond it); also sizes the socket high-water marks.
        epoch: the session epoch in force when the instance is started (a
            restarted instance must not stamp its output with epoch 0).
        pipeline_dir: directory put on ``sys.path`` to find local plugins.
        log_level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
        work_endpoint: set for a replicated actor: the dispatcher binds this
            ROUTER endpoint, each replica connects to it and receives its work
            items there instead of subscribing to the inputs itself.
        max_inflight: work items a replica may hold at once (dispatcher's cap).
        env: environment variables the host sets before it resolves the
            params (a session's id and port: ``VA_SESSION_ID``, ...). Never
            secrets: those come from the process environment only.
        extra_endpoints: more endpoints the data socket binds (a tcp one
            next to the ipc ``data_endpoint`` when another machine reads it).
        transport: the public transport settings (:class:`TransportSpec` as
            data: allowed keys, peers' keys, insecure); empty: ipc only. The
            machine's secret key comes from the environment, never from here.
        state_store: the conversation store's file
            (:mod:`va_actors.runtime.state`); empty: none.
        session: the session id the store keeps this conversation under.
        run: this pipeline run's id (a stored reply of another run is never re-run).
        replay_s, replay_bytes: bounds of the ring this instance keeps per
            output stream for restarted consumers (0: none).
        seen_path: the last-seen file this instance writes (runtime/replay/
            seen.py); None: none (an instance on a worker: heartbeats carry
            the numbers instead).
        resume: for a restart: ``{"since_ns": int, "seen": {topic: {source:
            [seq, ts_ns]}}}``, what the previous incarnations had handed on;
            empty on a first start (no replay is asked for).
    """

    actor: str
    instance: str
    plugin: str
    data_endpoint: str
    sys_pub: str
    sys_pull: str
    replica: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    category: str = ""
    inputs: list[InputSpec] = field(default_factory=list)
    expected_subscribers: dict[str, int] = field(default_factory=dict)
    heartbeat_interval_s: float = 0.25
    audio_queue_ms: int = 2000
    epoch: int = 0
    pipeline_dir: str | None = None
    log_level: str = "INFO"
    work_endpoint: str | None = None
    max_inflight: int = 1
    env: dict[str, str] = field(default_factory=dict)
    extra_endpoints: list[str] = field(default_factory=list)
    transport: dict[str, Any] = field(default_factory=dict)
    state_store: str = ""
    session: str = ""
    run: str = ""
    replay_s: float = 0.0
    replay_bytes: int = 0
    seen_path: str | None = None
    resume: dict[str, Any] = field(default_factory=dict)

    @property
    def transport_spec(self) -> TransportSpec:
        """:attr:`transport` parsed (validated with the spec)."""
        return TransportSpec.from_dict(self.transport or {}, "actor spec: transport")

    @property
    def is_dispatcher(self) -> bool:
        """True for the dispatcher instance of a replicated actor."""
        return self.category == DISPATCH_CATEGORY

    @property
    def is_replica(self) -> bool:
        """True for a replica that takes its work from a dispatcher."""
        return self.work_endpoint is not None and not self.is_dispatcher

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`SpecError` if any field is wrong."""
        self._check_names()
        for name in ("plugin", "data_endpoint", "sys_pub", "sys_pull"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise SpecError(f"actor spec: {name!r} must be a non-empty string")
        if not isinstance(self.params, dict):
            raise SpecError(f"actor spec: 'params' must be a map, got "
                            f"{type(self.params).__name__}")
        _check_int("replica", self.replica, 0)
        _check_int("audio_queue_ms", self.audio_queue_ms, 20)
        _check_int("epoch", self.epoch, 0)
        _check_int("max_inflight", self.max_inflight, 1)
        _check_int("replay_bytes", self.replay_bytes, 0)
        _check_seconds("replay_s", self.replay_s)
        if self.seen_path is not None and not isinstance(self.seen_path, str):
            raise SpecError("actor spec: 'seen_path' must be a string or null")
        if not isinstance(self.resume, dict):
            raise SpecError("actor spec: 'resume' must be a map")
        if self.work_endpoint is not None and (
                not isinstance(self.work_endpoint, str) or "://" not in self.work_endpoint):
            raise SpecError(f"actor spec: 'work_endpoint' must be an endpoint like "
                            f"'ipc:///path/actor-dispatch.work', got {self.work_endpoint!r}")
        hb = self.heartbeat_interval_s
        if isinstance(hb, bool) or not isinstance(hb, int | float) or not math.isfinite(hb) \
                or not 0.01 <= hb <= 60:
            raise SpecError(f"actor spec: 'heartbeat_interval_s' must be within 0.01..60 s, "
                            f"got {hb!r}")
        if not isinstance(self.log_level, str) or \
                logging.getLevelName(self.log_level.upper()) not in _LEVELS:
            raise SpecError(f"actor spec: 'log_level' must be one of DEBUG, INFO, WARNING, "
                            f"ERROR, got {self.log_level!r}")
        self._check_inputs()
        self._check_expected()
        if not isinstance(self.env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()):
            raise SpecError("actor spec: 'env' must be a map of strings to strings")
        if not isinstance(self.extra_endpoints, list) or not all(
                isinstance(e, str) and "://" in e for e in self.extra_endpoints):
            raise SpecError("actor spec: 'extra_endpoints' must be a list of endpoints")
        for name in ("state_store", "session", "run"):
            if not isinstance(getattr(self, name), str):
                raise SpecError(f"actor spec: {name!r} must be a string")
        try:
            self.transport_spec  # noqa: B018 - parsed for its errors
        except TransportError as exc:
            raise SpecError(str(exc)) from None

    def _check_names(self) -> None:
        for name in ("actor", "instance"):
            value = getattr(self, name)
            try:
                topics.check_name(value, f"{name} name")
            except topics.TopicError as exc:
                raise SpecError(f"actor spec: {exc}") from None
        if not isinstance(self.category, str):
            raise SpecError("actor spec: 'category' must be a string")
        if self.pipeline_dir is not None and not isinstance(self.pipeline_dir, str):
            raise SpecError("actor spec: 'pipeline_dir' must be a string or null")

    def _check_inputs(self) -> None:
        if not isinstance(self.inputs, list):
            raise SpecError("actor spec: 'inputs' must be a list")
        seen: set[str] = set()
        for i, item in enumerate(self.inputs):
            where = f"actor spec: inputs[{i}]"
            if not isinstance(item, InputSpec) or not isinstance(item.topic, str):
                raise SpecError(f"{where} must be an input spec with a 'topic' string")
            try:
                topics.split(item.topic)
            except topics.TopicError as exc:
                raise SpecError(f"{where}: {exc}") from None
            if item.topic in seen:
                raise SpecError(f"{where}: topic {item.topic!r} is listed twice")
            seen.add(item.topic)
            _check_rate(f"{where}.fps", item.fps)
            _check_rate(f"{where}.max_age_ms", item.max_age_ms)
            _check_seconds(f"inputs[{i}].replay_s", item.replay_s)
            if self.is_replica and not item.endpoints:
                continue  # a replica's input arrives from the dispatcher
            if not isinstance(item.endpoints, list) or not item.endpoints or not all(
                    isinstance(e, str) and "://" in e for e in item.endpoints):
                raise SpecError(f"{where} ({item.topic}): 'endpoints' must be a non-empty "
                                "list of endpoints like 'ipc:///path/actor.sock'")

    def _check_expected(self) -> None:
        if not isinstance(self.expected_subscribers, dict):
            raise SpecError("actor spec: 'expected_subscribers' must be a map")
        for topic, count in self.expected_subscribers.items():
            where = f"actor spec: expected_subscribers[{topic!r}]"
            try:
                actor, _ = topics.split(topic)
            except topics.TopicError as exc:
                raise SpecError(f"{where}: {exc}") from None
            if actor != self.actor:
                raise SpecError(f"{where}: actor {self.actor!r} cannot publish on another "
                                f"actor's topic")
            _check_int(f"expected_subscribers[{topic!r}]", count, 0)

    # -- JSON -------------------------------------------------------------------
    def to_json(self) -> str:
        """The spec as JSON text (what the supervisor writes)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, where: str = "actor spec") -> ActorSpec:
        """Parse :meth:`to_json` output; raise :class:`SpecError` naming ``where``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SpecError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)} (this host "
                            f"knows {', '.join(sorted(known))})")
        missing = sorted(f.name for f in fields(cls) if f.name not in data and f.name in
                         _REQUIRED)
        if missing:
            raise SpecError(f"{where}: missing field(s) {', '.join(missing)}")
        data["inputs"] = [_input(i, item, where) for i, item in
                          enumerate(data.get("inputs") or [])]
        try:
            return cls(**data)
        except SpecError as exc:
            raise SpecError(f"{where}: {str(exc).removeprefix('actor spec: ')}") from None

    def write(self, path: str | Path) -> None:
        """Write the spec as JSON to ``path``."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> ActorSpec:
        """Read a spec written by :meth:`write`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read actor spec {str(path)!r}: {exc.strerror}") from None
        return cls.from_json(text, where=str(path))


_REQUIRED = frozenset({"actor", "instance", "plugin", "data_endpoint", "sys_pub", "sys_pull"})
_LEVELS = {logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR}


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"actor spec: {name!r} must be an integer >= {low}, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise SpecError(f"actor spec: {name!r} must be a number of seconds >= 0, got {value!r}")


def _check_rate(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value <= 0:
        raise SpecError(f"{name} must be a positive number or null, got {value!r}")


def _input(index: int, item: object, where: str) -> InputSpec:
    keys = {"topic", "endpoints", "epoch_bound", "fps", "max_age_ms", "replay_s"}
    if not isinstance(item, dict) or set(item) - keys or "topic" not in item:
        raise SpecError(f"{where}: inputs[{index}] must be an object with 'topic', "
                        f"'endpoints' and optionally 'epoch_bound', 'fps', 'max_age_ms', "
                        f"'replay_s', got {item!r}")
    bound = item.get("epoch_bound", True)
    if not isinstance(bound, bool):
        raise SpecError(f"{where}: inputs[{index}].epoch_bound must be true or false")
    return InputSpec(item["topic"], item.get("endpoints") or [], bound, item.get("fps"),
                     item.get("max_age_ms"), item.get("replay_s", 0.0))

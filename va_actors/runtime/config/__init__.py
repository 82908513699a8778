"""Pipeline files: load a TOML pipeline, check all of it, return frozen settings.

::

    [pipeline]
    name = "voice"              # optional; default: the file name without .toml
    on_give_up = "stop"         # or "degrade": keep running without a given-up actor
    stop_when_sources_finish = false  # true: stop once every source said it is done
    state = "conversations.db"  # optional: keep conversations here (default: the run dir;
                                # false: keep none, a restarted LLM starts afresh)

    [supervisor]                # defaults every actor inherits
    restart = "on-failure"
    hang_timeout_s = 5.0

    [[actor]]
    name = "stt"
    plugin = "mymod:MySTT"      # or an installed plugin's entry-point name
    inputs = ["mic.audio"]
    replicas = 2
    restart = "always"          # any [supervisor] key overrides the default here
    [actor.params]              # keyword arguments of the plugin class
    model = "tiny"

:func:`load_pipeline` reports every problem of a file at once, each with the
file and line it comes from, as a :class:`ConfigError`. Relative paths in a
file are taken from the file's own directory: actors and services run there.

The rooms: :mod:`.settings` (the frozen result and the errors), :mod:`.lines`
(where each key is in the text), :mod:`.graph` (pure graph algorithms),
:mod:`.checker` / :mod:`.tables` / :mod:`.actors` / :mod:`.wiring` /
:mod:`.document` (the checks), :mod:`.loader` (files in, settings out).
"""

from va_actors.runtime.config.lines import LineMap, scan_lines
from va_actors.runtime.config.loader import load_pipeline, parse_pipeline
from va_actors.runtime.config.settings import (
    ActorConfig,
    ConfigError,
    ConfigIssue,
    GiveUpPolicy,
    InputOptions,
    PipelineConfig,
    Placement,
    RestartMode,
    ServiceConfig,
    SupervisorDefaults,
    TransportConfig,
    WorkerConfig,
)
from va_actors.runtime.config.tables import (
    ACTOR_KEYS,
    SERVICE_KEYS,
    SUPERVISOR_KEYS,
    TOP_LEVEL_KEYS,
)

__all__ = [
    "ACTOR_KEYS",
    "SERVICE_KEYS",
    "SUPERVISOR_KEYS",
    "TOP_LEVEL_KEYS",
    "ActorConfig",
    "ConfigError",
    "ConfigIssue",
    "GiveUpPolicy",
    "InputOptions",
    "LineMap",
    "PipelineConfig",
    "Placement",
    "RestartMode",
    "ServiceConfig",
    "SupervisorDefaults",
    "TransportConfig",
    "WorkerConfig",
    "load_pipeline",
    "parse_pipeline",
    "scan_lines",
]

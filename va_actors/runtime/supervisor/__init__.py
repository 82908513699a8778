"""The supervisor, in the shape of Circus: an arbiter, a watcher per instance, a follower.

* :mod:`.arbiter`: :class:`Supervisor` runs one pipeline: run directory,
  services, start, the epoch, ordered shutdown.
* :mod:`.watcher`: a :class:`~.watcher.Watcher` owns one instance's process:
  spawn, wait, decide (the restart policy), kill, stop.
* :mod:`.specs`: each incarnation's spec; :mod:`.reports`: the hosts'
  reports; :mod:`.health`: health checks, re-sends, ``sys.metrics``;
  :mod:`.publisher`: the ``sys.pub`` socket and the manifest's instances.
* :mod:`.follower`: the :class:`~.follower.SessionFollower` watches turns,
  playback and sources for barge-in and the end of a run.
* :mod:`.topology`, :mod:`.status`, :mod:`.metrics`: who subscribes to
  what, state snapshots, the ``sys.metrics`` message.
"""

from va_actors.runtime.exits import EXIT_ERROR, EXIT_OK
from va_actors.runtime.exits import EXIT_FAILURE as EXIT_GAVE_UP
from va_actors.runtime.policy import RestartPolicy
from va_actors.runtime.supervisor.arbiter import Supervisor, SupervisorError
from va_actors.runtime.supervisor.status import InstanceStatus, PipelineStatus, State
from va_actors.runtime.supervisor.topology import expected_subscribers, supervisor_topics

__all__ = [
    "EXIT_ERROR",
    "EXIT_GAVE_UP",
    "EXIT_OK",
    "InstanceStatus",
    "PipelineStatus",
    "State",
    "Supervisor",
    "SupervisorError",
    "expected_subscribers",
    "restart_policy",
    "supervisor_topics",
]

restart_policy = RestartPolicy.from_settings
"""The restart policy an actor's supervision settings describe."""

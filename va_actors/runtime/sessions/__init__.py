"""Sessions at scale on one machine: ``va-launch serve``.

* :mod:`.server`: the :class:`~.server.SessionServer` (HTTP API, one
  supervisor per session, shared services, one warm pool).
* :mod:`.admission`: session limit and load thresholds, decided in one step.
* :mod:`.metrics`: Prometheus metrics at ``/metrics`` (docs/metrics.md).
"""

from va_actors.runtime.sessions.admission import Admission, Decision, Limits, Load
from va_actors.runtime.sessions.server import (
    AdmissionRefused,
    ServeSettings,
    Session,
    SessionServer,
)

__all__ = ["Admission", "AdmissionRefused", "Decision", "Limits", "Load", "ServeSettings",
           "Session", "SessionServer"]

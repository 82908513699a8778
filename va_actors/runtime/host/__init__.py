"""The actor host: one process per actor instance (docs/runtime.md, "Actor host").

* :mod:`.actor_host`: :class:`ActorHost`, the asyncio side: data sockets,
  decoding, sequence and epoch checks, the category driver.
* :mod:`.loading`: the plugin, its driver and params (:class:`ConfigError`).
* :mod:`.sockets`, :mod:`.output`, :mod:`.inputs`: transport and input SUB,
  the XPUB, the input path.
* :mod:`.queues`: the bounded input queues (audio in order, video newest).
* :mod:`.replay_client`, :mod:`.replay_server`: replay as consumer, as producer.
* :mod:`.tasks`, :mod:`.figures`: the host's tasks, the heartbeat's figures.
* :mod:`.control`: the control thread (reports, epoch, shutdown, loop lag).
* :mod:`.process`: the process entry point (``python -m va_actors.runtime.host``).
"""

from va_actors.runtime.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from va_actors.runtime.host.actor_host import ActorHost, ConfigError
from va_actors.runtime.host.process import main

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "ActorHost", "ConfigError", "main"]

"""The guide's blocks, its stand-in providers and the actor wrappers on ``sys.path``.

An actor process gets the same three directories through ``PYTHONPATH``
(:data:`guide_actors.PYTHONPATH`), as a user's installed plugin would be
importable there.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
for directory in (HERE, HERE / "blocks", HERE / "providers"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

"""Fixtures for the guide tests: the fake Acme provider on 127.0.0.1, and import paths."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

HERE = Path(__file__).parent
VERBATIM = HERE / "verbatim"
# The ported plugin package ``acme`` and ``fake_acme``; the guide's blocks as written,
# their stand-in providers and actor wrappers (an actor process gets the same three
# through PYTHONPATH: ``guide_actors.PYTHONPATH``).
for directory in (VERBATIM / "providers", VERBATIM / "blocks", VERBATIM, HERE):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from fake_acme import API_KEY, AcmeState, make_app  # noqa: E402


@dataclass
class AcmeProvider:
    """A running fake provider: where it listens and what it saw."""

    base_url: str
    state: AcmeState
    api_key: str = API_KEY


@pytest.fixture
async def acme_provider() -> AsyncIterator[AcmeProvider]:
    """Start the fake Acme provider on a random local port; stop it afterwards."""
    state = AcmeState()
    server = TestServer(make_app(state), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield AcmeProvider(base_url=str(server.make_url("")).rstrip("/"), state=state)
    finally:
        await server.close()

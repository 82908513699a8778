"""The Stream edge's tests run in va-launch's own environment, offline.

getstream[webrtc] is not (and must not be) installed there: the SDK double
in sdk_double/ is put first on sys.path for these tests only, and the
plugin's package directory is added to the va_actors.plugins namespace
(the distribution lives only in launch/envs/stream).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import va_actors.plugins

HERE = Path(__file__).resolve().parent
DOUBLE = HERE / "sdk_double"
PACKAGE = HERE.parent / "va_actors" / "plugins"

if str(PACKAGE) not in va_actors.plugins.__path__:
    va_actors.plugins.__path__.append(str(PACKAGE))


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The SDK double, imported fresh; STREAM_API_KEY/SECRET set to test values."""
    for name in [m for m in sys.modules if m == "getstream" or m.startswith("getstream.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(DOUBLE))
    monkeypatch.setenv("STREAM_API_KEY", "key-for-tests")
    monkeypatch.setenv("STREAM_API_SECRET", "secret-for-tests-not-to-be-logged")
    monkeypatch.delenv("STREAM_DOUBLE_SCRIPT", raising=False)
    monkeypatch.delenv("STREAM_DOUBLE_RECORD", raising=False)
    from getstream.video import rtc

    yield rtc
    for name in [m for m in sys.modules if m == "getstream" or m.startswith("getstream.")]:
        sys.modules.pop(name, None)

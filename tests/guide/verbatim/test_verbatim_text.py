"""Every Python block of the guide is here, and is the guide's text but for the imports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from guide_blocks import BLOCKS, GUIDE_BLOCKS, source

REPO = Path(__file__).resolve().parents[3]
SEED_GUIDE = REPO.parent / "shared" / "reference" / "seed-guide.md"
"""The guide as Vision Agents publishes it (beside the repository, as in CI)."""

IMPORTS = [  # the two changes the promise allows, and the plugins' namespace
    ("from vision_agents.core", "from va_actors.core"),
    ("from getstream.video.rtc.track_util import PcmData",
     "from va_actors.core.audio import PcmData"),
    ("from vision_agents.plugins import", "from va_actors.plugins import"),
]


def guide_python_blocks() -> list[str]:
    text = SEED_GUIDE.read_text()
    return [body for lang, body in re.findall(r"```(\w+)[^\n]*\n(.*?)```", text, re.S)
            if lang == "python"]


def test_no_block_names_vision_agents_or_getstream() -> None:
    for name in GUIDE_BLOCKS:
        text = source(name)
        assert "vision_agents" not in text and "getstream" not in text, name
    assert sorted(GUIDE_BLOCKS) == sorted(str(p.relative_to(BLOCKS))
                                          for p in BLOCKS.rglob("*.py"))


@pytest.mark.skipif(not SEED_GUIDE.exists(), reason=f"the seed guide is not at {SEED_GUIDE}")
def test_each_block_is_the_guides_text_with_only_the_imports_changed() -> None:
    guide = guide_python_blocks()
    assert len(guide) == len(GUIDE_BLOCKS) == 21
    for name, original in zip(GUIDE_BLOCKS, guide, strict=True):
        expected = original
        for old, new in IMPORTS:
            expected = expected.replace(old, new)
        assert source(name) == expected, f"{name} differs from the guide's block"

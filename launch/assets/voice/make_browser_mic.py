"""Make the fake-microphone files for a browser talking to launch/browser_agent.toml.

    .venv/bin/python launch/assets/voice/make_browser_mic.py

Chromium plays a WAV file as its microphone with
``--use-fake-device-for-media-stream --use-file-for-fake-audio-capture=FILE%noloop``;
these files put the bundled questions (made by make_voice.py) on such a
timeline, at 16 kHz mono:

- ``browser_weather.wav``: the weather question at 1 s, then silence (11 s in all);
- ``browser_bargein.wav``: the weather question at 1 s, and the joke question
  at 12 s, while the agent is still answering the first (barge-in: a reply
  of 60 tokens lasts 10 s or more, and starts within 1-5 s even on a busy
  machine); 26 s.

The tests and bench/browser.py make variants of these the same way
(tests/integration/chromium.py, ``mic_file``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.integration.chromium import Speech, mic_file  # noqa: E402

RATE = 16000
FILES = {
    "browser_weather.wav": ([Speech(HERE / "weather.wav", 1.0)], 11.0),
    "browser_bargein.wav": ([Speech(HERE / "weather.wav", 1.0),
                             Speech(HERE / "joke.wav", 12.0)], 26.0),
}


def main() -> None:
    for name, (speech, total_s) in FILES.items():
        mic_file(HERE / name, speech, total_s, RATE)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

"""Benchmark: streaming 48 kHz stereo s16 -> 16 kHz mono s16 in 20 ms chunks.

Times every chunk through:

* ``va_actors`` ``Resampler`` (stateful soxr HQ), PcmData in -> PcmData out;
* PyAV ``av.AudioResampler`` (stateful swresample), AudioFrame in -> frames out;
* ``PcmData.resample`` called on each chunk alone (one-shot soxr, no state),
  the pattern a plugin uses when it resamples every chunk itself.

and measures, on the same run's output, how much of a 10 kHz tone (above
the new 8 kHz Nyquist limit, so it would fold to 6 kHz) survives relative to
an in-band 997 Hz tone. Lower is better.

Only the per-chunk call is timed (input objects are built beforehand, outputs
are converted afterwards); the first ten chunks are warm-up and not counted.

Run: ``.venv/bin/python bench/resample.py [--chunks N]``. Import ``run`` to
get the rows as dicts.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from va_actors.core.audio import PcmData, Resampler

IN_RATE = 48000
OUT_RATE = 16000
CHUNK = IN_RATE // 50  # 20 ms
WARMUP_CHUNKS = 10
MIN_CHUNKS = 60  # alias measurement needs > 1 s of output
# Not a divisor of the rates: with an exact 1 kHz the int16 output is periodic,
# its rounding error lands only on odd harmonics and the 6 kHz bin reads -300 dB.
IN_BAND_HZ = 997

Array = npt.NDArray[Any]
# A method: a step run (and timed) once per chunk index, and a finish that
# turns the steps' raw outputs into one mono array after timing.
Method = tuple[Callable[[int], object], Callable[[list[object]], Array]]


def _source(chunks: int) -> Array:
    """Interleaved s16 stereo: 997 Hz + 10 kHz tones at 0.3 full scale each."""
    t = np.arange(chunks * CHUNK) / IN_RATE
    mono = 0.3 * np.sin(2 * np.pi * IN_BAND_HZ * t) + 0.3 * np.sin(2 * np.pi * 10000 * t)
    mono16 = np.rint(mono * 32767).astype(np.int16)
    return np.repeat(mono16, 2)


def _level_db(signal: Array, freq: float) -> float:
    x = signal.astype(np.float64) * np.hanning(signal.size)
    spectrum = np.abs(np.fft.rfft(x))
    centre = round(freq * signal.size / OUT_RATE)
    return float(20 * np.log10(spectrum[centre - 3 : centre + 4].max() + 1e-12))


def alias_db(output: Array) -> float:
    """Level at 6 kHz (folded 10 kHz) minus the in-band tone, on the steady part."""
    steady = output[OUT_RATE // 10 : -OUT_RATE // 10]
    return _level_db(steady, 6000) - _level_db(steady, IN_BAND_HZ)


def _ours(chunks: list[bytes]) -> Method:
    resampler = Resampler(OUT_RATE, 1)
    inputs = [PcmData.from_bytes(c, IN_RATE, "s16", 2) for c in chunks]

    def finish(outputs: list[object]) -> Array:
        pcms = [*outputs, resampler.flush()]
        return np.concatenate([p.samples for p in pcms if isinstance(p, PcmData)])

    return (lambda i: resampler.process(inputs[i])), finish


def _pyav(chunks: list[bytes]) -> Method:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=OUT_RATE)
    inputs = []
    for c in chunks:
        planes = np.frombuffer(c, np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(planes, format="s16", layout="stereo")
        frame.sample_rate = IN_RATE
        inputs.append(frame)

    def finish(outputs: list[object]) -> Array:
        frames = [f for out in outputs if isinstance(out, list) for f in out]
        frames += resampler.resample(None)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])

    return (lambda i: resampler.resample(inputs[i])), finish


def _per_chunk_oneshot(chunks: list[bytes]) -> Method:
    inputs = [PcmData.from_bytes(c, IN_RATE, "s16", 2) for c in chunks]

    def finish(outputs: list[object]) -> Array:
        return np.concatenate([p.samples for p in outputs if isinstance(p, PcmData)])

    return (lambda i: inputs[i].resample(OUT_RATE, 1)), finish


METHODS: dict[str, Callable[[list[bytes]], Method]] = {
    "va_actors Resampler (soxr HQ, stateful)": _ours,
    "PyAV av.AudioResampler (swresample, stateful)": _pyav,
    "PcmData.resample per chunk (one-shot soxr)": _per_chunk_oneshot,
}


def _time_method(build: Callable[[list[bytes]], Method], chunks: list[bytes]) -> dict[str, Any]:
    step, finish = build(chunks)
    timings_ns: list[int] = []
    outputs: list[object] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(len(chunks)):
            start = time.perf_counter_ns()
            out = step(i)
            timings_ns.append(time.perf_counter_ns() - start)
            outputs.append(out)
    finally:
        if gc_was_enabled:
            gc.enable()
    output = finish(outputs)
    steady_us = sorted(t / 1000 for t in timings_ns[WARMUP_CHUNKS:])
    return {
        "median_us": statistics.median(steady_us),
        "p99_us": steady_us[round(0.99 * (len(steady_us) - 1))],
        "max_us": steady_us[-1],
        "alias_db": alias_db(output),
        "output_samples": int(output.size),
    }


def run(chunks: int = 2000) -> list[dict[str, Any]]:
    """Time every method on ``chunks`` 20 ms chunks; one dict per method.

    Keys: method, chunks, median_us, p99_us, max_us (first ten chunks
    excluded as warm-up), alias_db (lower is better), output_samples.
    """
    chunks = max(chunks, MIN_CHUNKS)
    interleaved = _source(chunks).tobytes()
    size = CHUNK * 2 * 2
    pieces = [interleaved[i : i + size] for i in range(0, len(interleaved), size)]
    return [
        {"method": name, "chunks": chunks, **_time_method(build, pieces)}
        for name, build in METHODS.items()
    ]


def _table(rows: list[dict[str, Any]]) -> str:
    header = f"| {'method':<47} | median µs | p99 µs | max µs | alias dB |"
    rule = f"|{'-' * 49}|----------:|-------:|-------:|---------:|"
    lines = [header, rule]
    for r in rows:
        lines.append(
            f"| {r['method']:<47} | {r['median_us']:9.1f} | {r['p99_us']:6.1f} "
            f"| {r['max_us']:6.1f} | {r['alias_db']:8.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=2000, help="20 ms chunks to time")
    args = parser.parse_args()
    rows = run(args.chunks)
    print(f"48 kHz stereo s16 -> 16 kHz mono s16, {rows[0]['chunks']} chunks of 20 ms")
    print(_table(rows))


if __name__ == "__main__":
    main()

"""PcmData: construction, conversions, round trips and editing."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import cast

import av
import numpy as np
import pytest
from av.audio.codeccontext import AudioCodecContext

from va_actors.core.audio import AudioFormat, PcmData


def _tone(freq: float, rate: int, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _s16(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int16)


# ---------------------------------------------------------------- construction


def test_format_enum_compares_with_strings() -> None:
    pcm = PcmData(16000, "s16", _s16([1, 2]))
    fmt: str = pcm.format
    assert pcm.format is AudioFormat.S16
    assert fmt == "s16"
    assert PcmData(16000, AudioFormat.F32).format == "f32"


def test_empty_default_samples_match_format() -> None:
    assert PcmData(16000, "f32").samples.dtype == np.float32
    stereo = PcmData(48000, "s16", channels=2)
    assert stereo.samples.shape == (2, 0)
    assert stereo.empty and stereo.duration == 0.0


def test_dtype_mismatch_names_both_dtypes() -> None:
    with pytest.raises(TypeError, match=r"float64.*'s16'.*int16"):
        PcmData(16000, "s16", np.zeros(4))


@pytest.mark.parametrize("rate", [0, -16000, 1.5, "16k", True])
def test_bad_sample_rate_names_parameter(rate: object) -> None:
    with pytest.raises(ValueError, match=r"sample_rate must be a positive integer, got"):
        PcmData(rate, "s16")  # type: ignore[arg-type]


def test_unknown_format_names_value() -> None:
    with pytest.raises(ValueError, match=r"format must be 's16' or 'f32', got 's24'"):
        PcmData(16000, "s24")  # type: ignore[arg-type]


def test_channels_that_do_not_divide_samples() -> None:
    with pytest.raises(ValueError, match=r"channels=3 does not divide the 10"):
        PcmData(16000, "s16", np.zeros(10, np.int16), channels=3)
    with pytest.raises(ValueError, match=r"channels must be a positive integer, got 0"):
        PcmData(16000, "s16", channels=0)
    with pytest.raises(ValueError, match=r"shape \(3, 4\) does not match channels=2"):
        PcmData(16000, "s16", np.zeros((3, 4), np.int16), channels=2)


def test_samples_must_be_ndarray() -> None:
    with pytest.raises(TypeError, match=r"samples must be a numpy\.ndarray, got list"):
        PcmData(16000, "s16", [1, 2, 3])  # type: ignore[arg-type]


def test_time_major_and_interleaved_arrays_become_channel_major() -> None:
    frames = np.array([[1, -1], [2, -2], [3, -3]], np.int16)  # (n, channels)
    pcm = PcmData(16000, "s16", frames, channels=2)
    assert pcm.samples.tolist() == [[1, 2, 3], [-1, -2, -3]]
    interleaved = PcmData(16000, "s16", frames.reshape(-1), channels=2)
    assert interleaved.samples.tolist() == [[1, 2, 3], [-1, -2, -3]]


def test_properties() -> None:
    pcm = PcmData(
        48000, "s16", np.zeros((2, 960), np.int16), pts=960, time_base=1 / 48000, channels=2
    )
    assert pcm.duration == pytest.approx(0.02)
    assert pcm.duration_ms == pytest.approx(20.0)
    assert pcm.stereo and not pcm.empty
    assert pcm.pts_seconds == pytest.approx(0.02)
    assert pcm.dts_seconds is None
    assert pcm.num_samples == 960


# ------------------------------------------------------------------ bytes/numpy


def test_bytes_numpy_round_trip_stereo() -> None:
    interleaved = np.array([1, -1, 2, -2, 3, -3], np.int16)
    pcm = PcmData.from_bytes(interleaved.tobytes(), 16000, "s16", channels=2)
    assert pcm.samples.tolist() == [[1, 2, 3], [-1, -2, -3]]
    assert pcm.to_bytes() == interleaved.tobytes()
    assert pcm.data.tolist() == interleaved.tolist()
    again = PcmData.from_numpy(pcm.samples, 16000, "s16", channels=2)
    assert again.to_bytes() == interleaved.tobytes()


def test_from_bytes_trims_misaligned_tail() -> None:
    assert PcmData.from_bytes(b"\x01\x00\x02\x00\x03", 16000).samples.tolist() == [1, 2]
    stereo = PcmData.from_bytes(b"\x01\x00\x02\x00\x03\x00", 16000, channels=2)
    assert stereo.samples.shape == (2, 1)
    f32 = PcmData.from_bytes(np.array([0.5], np.float32).tobytes() + b"\x00", 16000, "f32")
    assert f32.samples.tolist() == [0.5]


def test_from_bytes_copies_mutable_buffers() -> None:
    buffer = bytearray(np.array([7, 8], np.int16).tobytes())
    pcm = PcmData.from_bytes(buffer, 16000)
    buffer[:] = bytes(len(buffer))
    assert pcm.samples.tolist() == [7, 8]


def test_from_numpy_scales_between_int_and_float() -> None:
    assert PcmData.from_numpy(np.array([0.5, -1.0]), 16000, "s16").samples.tolist() == [
        16384,
        -32768,
    ]
    as_f32 = PcmData.from_numpy(np.array([16384, -32768], np.int16), 16000, "f32")
    assert as_f32.samples.tolist() == [0.5, -1.0]
    wide = PcmData.from_numpy(np.array([100, 40000], np.int64), 16000, "s16")
    assert wide.samples.tolist() == [100, 32767]
    with pytest.raises(TypeError, match=r"array must be a numpy\.ndarray, got bytes"):
        PcmData.from_numpy(b"\x00\x00", 16000)  # type: ignore[arg-type]


def test_data_is_interleaved_view_for_mono() -> None:
    mono = PcmData(16000, "s16", _s16([1, 2, 3]))
    assert mono.data is mono.samples
    planar = PcmData(16000, "f32", np.array([[1, 2], [3, 4]], np.float32), channels=2)
    assert planar.data.tolist() == [1, 3, 2, 4]
    assert planar.data.dtype == np.float32


# ----------------------------------------------------------------- s16 <-> f32


def test_s16_f32_round_trip_is_exact_for_every_value() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    pcm = PcmData(16000, "s16", every)
    as_float = pcm.to_float32()
    assert as_float.format == "f32" and as_float.samples.dtype == np.float32
    assert np.array_equal(as_float.to_int16().samples, every)
    assert pcm.to_int16() is pcm and as_float.to_float32() is as_float


def test_f32_to_s16_clips_and_rounds() -> None:
    pcm = PcmData(16000, "f32", np.array([1.5, -2.0, 1.0, 0.25, 1e-5], np.float32))
    assert pcm.to_int16().samples.tolist() == [32767, -32768, 32767, 8192, 0]


def test_conversions_keep_metadata() -> None:
    who = object()
    pcm = PcmData(16000, "s16", _s16([1]), pts=5, dts=4, time_base=0.001, participant=who)
    out = pcm.to_float32()
    assert (out.pts, out.dts, out.time_base, out.participant) == (5, 4, 0.001, who)


# ---------------------------------------------------------------------- PyAV


@pytest.mark.parametrize(("fmt", "channels"), [("s16", 2), ("f32", 1), ("s16", 1), ("f32", 2)])
def test_av_frame_round_trip(fmt: str, channels: int) -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(-0.9, 0.9, (channels, 480)).astype(np.float32)
    pcm = PcmData.from_numpy(values, 24000, fmt, channels=channels)  # type: ignore[arg-type]
    pcm.pts, pcm.time_base = 480, 1 / 24000
    frame = pcm.to_av_frame()
    assert frame.sample_rate == 24000 and frame.samples == 480
    assert frame.layout.nb_channels == channels
    assert frame.time_base == Fraction(1, 24000)
    back = PcmData.from_av_frame(frame)
    assert back.format == fmt and back.channels == channels
    assert np.array_equal(back.samples, pcm.samples)
    assert back.pts == 480 and back.time_base == pytest.approx(1 / 24000)


def test_from_packed_av_frame_deinterleaves() -> None:
    interleaved = np.array([[1, -1, 2, -2, 3, -3]], np.int16)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    frame.sample_rate = 48000
    pcm = PcmData.from_av_frame(frame)
    assert pcm.samples.tolist() == [[1, 2, 3], [-1, -2, -3]]


def test_wav_round_trip() -> None:
    samples = np.array([[0, 1000, -1000], [5, -5, 32767]], np.int16)
    pcm = PcmData(22050, "s16", samples, channels=2)
    with wave.open(io.BytesIO(pcm.to_wav_bytes())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 22050)
        frames = wav.readframes(wav.getnframes())
    assert PcmData.from_bytes(frames, 22050, "s16", 2).samples.tolist() == samples.tolist()
    f32_wav = pcm.to_float32().to_wav_bytes()
    assert f32_wav == pcm.to_wav_bytes()


# ---------------------------------------------------------------------- G.711


def _av_g711_decode(codec: str, data: bytes) -> np.ndarray:
    ctx = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    frames = ctx.decode(av.Packet(data))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


@pytest.mark.parametrize(("law", "codec"), [("mulaw", "pcm_mulaw"), ("alaw", "pcm_alaw")])
def test_g711_decode_matches_ffmpeg(law: str, codec: str) -> None:
    every_code = bytes(range(256))
    ours = PcmData.from_g711(every_code, mapping=law)  # type: ignore[arg-type]
    assert ours.sample_rate == 8000 and ours.format == "s16"
    assert np.array_equal(ours.samples, _av_g711_decode(codec, every_code))


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_encode_round_trip(law: str) -> None:
    levels = PcmData.from_g711(bytes(range(256)), mapping=law).samples  # type: ignore[arg-type]
    # Encoding a decoded level gives back that level.
    encoded = PcmData(8000, "s16", levels).g711_bytes(mapping=law)  # type: ignore[arg-type]
    assert np.array_equal(PcmData.from_g711(encoded, mapping=law).samples, levels)  # type: ignore[arg-type]
    # Every int16 value maps to its nearest level.
    every = np.arange(-32768, 32768, dtype=np.int16)
    decoded = PcmData.from_g711(
        PcmData(8000, "s16", every).g711_bytes(mapping=law),  # type: ignore[arg-type]
        mapping=law,  # type: ignore[arg-type]
    ).samples.astype(np.int32)
    sorted_levels = np.unique(levels.astype(np.int32))
    nearest = np.abs(every[:, None].astype(np.int32) - sorted_levels[None, :]).min(axis=1)
    assert np.array_equal(np.abs(decoded - every), nearest)


def test_g711_base64_and_multichannel() -> None:
    payload = bytes([0xFF, 0x7F, 0x00, 0x80])
    text = base64.b64encode(payload).decode()
    assert np.array_equal(PcmData.from_g711(text).samples, PcmData.from_g711(payload).samples)
    as_b64_bytes = PcmData.from_g711(text.encode(), encoding="base64")
    assert as_b64_bytes.samples.size == 4
    stereo = PcmData.from_g711(payload, channels=2)
    assert stereo.samples.shape == (2, 2)
    with pytest.raises(ValueError, match="mapping must be 'mulaw' or 'alaw', got 'ulaw'"):
        PcmData.from_g711(payload, mapping="ulaw")  # type: ignore[arg-type]


def test_g711_bytes_resamples_to_8k_mono() -> None:
    pcm = PcmData.from_numpy(_tone(440, 16000, 0.5), 16000, "f32")
    encoded = pcm.g711_bytes()
    assert len(encoded) == 4000
    decoded = PcmData.from_g711(encoded).to_float32().samples
    reference = _tone(440, 8000, 0.5)
    # mu-law keeps roughly 35 dB SNR on a -10 dBFS tone.
    noise = decoded[100:-100] - reference[100:-100]
    snr_db = 10 * np.log10(np.mean(reference[100:-100] ** 2) / np.mean(noise**2))
    assert snr_db > 30


# -------------------------------------------------------------- from_response


def _split_bytes(data: bytes, sizes: list[int]) -> list[bytes]:
    parts, start = [], 0
    for size in sizes:
        parts.append(data[start : start + size])
        start += size
    parts.append(data[start:])
    return parts


def test_from_response_bytes_and_passthrough() -> None:
    single = PcmData.from_response(_s16([1, 2]).tobytes(), sample_rate=24000)
    assert isinstance(single, PcmData) and single.sample_rate == 24000
    assert PcmData.from_response(single) is single


def test_from_response_realigns_odd_splits_sync() -> None:
    interleaved = np.arange(-50, 50, dtype=np.int16)
    parts = _split_bytes(interleaved.tobytes(), [3, 1, 5, 7, 2, 1, 9])
    out = list(PcmData.from_response(iter(parts), sample_rate=16000, channels=2))
    assert all(isinstance(p, PcmData) and p.channels == 2 for p in out)
    joined = b"".join(p.to_bytes() for p in out)
    assert joined == interleaved.tobytes()


async def test_from_response_realigns_odd_splits_async() -> None:
    values = np.linspace(-1, 1, 101, dtype=np.float32)
    raw = values.tobytes()

    async def stream() -> AsyncIterator[bytes]:
        for part in _split_bytes(raw, [1, 2, 3, 5, 7, 11, 13]):
            await asyncio.sleep(0)
            yield part
        yield b"\x00\x01"  # incomplete trailing sample: dropped

    out = [p async for p in PcmData.from_response(stream(), sample_rate=16000, format="f32")]
    assert np.array_equal(np.concatenate([p.samples for p in out]), values)


def test_from_response_reads_data_attribute_and_rejects_junk() -> None:
    class Chunk:
        def __init__(self, data: bytes) -> None:
            self.data = data

    out = list(PcmData.from_response([Chunk(b"\x01"), Chunk(b"\x00\x02\x00")]))
    assert np.concatenate([p.samples for p in out]).tolist() == [1, 2]
    assert PcmData.from_response(Chunk(b"\x05\x00")).samples.tolist() == [5]
    with pytest.raises(TypeError, match=r"chunk must be bytes, PcmData or have bytes \.data"):
        list(PcmData.from_response([1, 2]))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="from_response cannot read int"):
        PcmData.from_response(5)  # type: ignore[call-overload]


# ---------------------------------------------------------------- resample


def test_resample_whole_clip() -> None:
    stereo = np.stack([_tone(1000, 48000, 1.0), _tone(1000, 48000, 1.0)])
    pcm = PcmData.from_numpy(stereo, 48000, "s16", channels=2)
    out = pcm.resample(16000, 1)
    assert (out.sample_rate, out.channels, out.format) == (16000, 1, "s16")
    assert out.samples.shape == (16000,)
    expected = PcmData.from_numpy(_tone(1000, 16000, 1.0), 16000, "s16").samples
    assert np.abs(out.samples[100:-100].astype(int) - expected[100:-100]).max() <= 2
    assert pcm.resample(48000) is pcm


def test_resample_upmix_and_bad_channel_conversion() -> None:
    mono = PcmData(16000, "f32", _tone(440, 16000, 0.1))
    up = mono.resample(16000, 2)
    assert up.samples.shape == (2, 1600)
    assert np.array_equal(up.samples[0], up.samples[1])
    three = PcmData(16000, "s16", np.zeros((3, 10), np.int16), channels=3)
    with pytest.raises(ValueError, match="cannot convert 3 channels to 2"):
        three.resample(16000, 2)


# ------------------------------------------------------------------- editing


def test_append_in_place_and_adapts() -> None:
    base = PcmData(16000, "s16", _s16([1, 2]))
    returned = base.append(PcmData(16000, "s16", _s16([3, 4])))
    assert returned is base and base.samples.tolist() == [1, 2, 3, 4]
    base.append(PcmData(16000, "f32", np.array([0.5], np.float32)))
    assert base.samples.tolist() == [1, 2, 3, 4, 16384]
    base.append(PcmData(16000, "s16", np.array([[10, 20], [30, 40]], np.int16), channels=2))
    assert base.samples.tolist()[-2:] == [20, 30]
    base.append(PcmData(8000, "s16", np.zeros(800, np.int16)))
    assert base.samples.size == 7 + 1600
    empty = PcmData(48000, "f32", channels=2)
    empty.append(PcmData(48000, "s16", _s16([16384, 0])))
    assert empty.samples.tolist() == [[0.5, 0.0], [0.5, 0.0]]
    with pytest.raises(TypeError, match="append expects PcmData, got bytes"):
        base.append(b"\x00")  # type: ignore[arg-type]


def test_copy_and_clear() -> None:
    pcm = PcmData(16000, "s16", _s16([1, 2, 3]), pts=7)
    dup = pcm.copy()
    dup.samples[0] = 99
    assert pcm.samples[0] == 1 and dup.pts == 7
    pcm.clear()
    assert pcm.empty and pcm.sample_rate == 16000 and pcm.samples.dtype == np.int16


def test_head_and_tail() -> None:
    pcm = PcmData(1000, "s16", np.arange(1000, dtype=np.int16))
    assert pcm.head(0.1).samples.tolist() == list(range(100))
    assert pcm.tail(0.1).samples.tolist() == list(range(900, 1000))
    assert pcm.head(5).num_samples == 1000  # shorter, no pad
    padded = pcm.tail(1.5, pad=True, pad_at="start")
    assert padded.num_samples == 1500 and padded.samples[:500].max() == 0
    assert padded.samples[-1] == 999
    end_padded = pcm.head(1.2, pad=True)
    assert end_padded.samples[999] == 999 and end_padded.samples[1000:].max() == 0
    stereo = PcmData(1000, "f32", np.ones((2, 50), np.float32), channels=2)
    assert stereo.head(0.1, pad=True).samples.shape == (2, 100)
    with pytest.raises(ValueError, match="pad_at must be 'start' or 'end', got 'middle'"):
        pcm.head(0.1, pad_at="middle")
    with pytest.raises(ValueError, match="duration_s must be >= 0, got -1"):
        pcm.tail(-1)


def test_chunks_semantics() -> None:
    pcm = PcmData(16000, "s16", np.arange(10, dtype=np.int16), pts=100, time_base=1 / 16000)
    plain = list(pcm.chunks(4))
    assert [c.samples.tolist() for c in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c.pts for c in plain] == [100, 104, 108]
    overlapped = list(pcm.chunks(4, overlap=2))
    assert [c.samples.tolist()[0] for c in overlapped] == [0, 2, 4, 6, 8]
    padded = list(pcm.chunks(4, pad_last=True))
    assert padded[-1].samples.tolist() == [8, 9, 0, 0]
    stereo = PcmData(16000, "s16", np.zeros((2, 10), np.int16), channels=2)
    assert [c.samples.shape for c in stereo.chunks(6)] == [(2, 6), (2, 4)]
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        list(pcm.chunks(0))
    with pytest.raises(ValueError, match=r"overlap must be in \[0, chunk_size=4\), got 4"):
        list(pcm.chunks(4, overlap=4))


def test_sliding_window() -> None:
    pcm = PcmData(16000, "s16", np.arange(800, dtype=np.int16))
    windows = list(pcm.sliding_window(25.0, 10.0))
    assert len(windows) == 5
    assert windows[0].num_samples == 400 and windows[1].samples[0] == 160
    assert all(w.num_samples == 400 for w in pcm.sliding_window(25.0, 10.0, pad_last=True))


@pytest.mark.parametrize(
    ("fmt", "dtype", "full"),
    [("s32", np.int32, 2**31), ("u8", np.uint8, 128), ("dbl", np.float64, 1.0)])
def test_decoder_formats_become_f32_at_the_same_level(fmt: str, dtype: type, full: float) -> None:
    # What PyAV decoders hand out for 24-bit WAV (s32), 8-bit WAV (u8) and some codecs (dbl).
    half = np.full((1, 160), full / 2, dtype=np.float64)
    if fmt == "u8":
        half = half + 128
    frame = av.AudioFrame.from_ndarray(half.astype(dtype), format=fmt, layout="mono")
    frame.sample_rate = 16000
    pcm = PcmData.from_av_frame(frame)
    assert pcm.format == "f32" and pcm.samples.dtype == np.float32
    np.testing.assert_allclose(pcm.samples, 0.5, atol=1e-3)

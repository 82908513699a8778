"""VideoFrame: conversions, wire planes, validation, checksum, JPEG helper."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from va_actors.core.video import PixelFormat, VideoFrame, frame_to_jpeg_bytes

TB = Fraction(1, 90000)


def smooth_rgb(width: int = 64, height: int = 48) -> npt.NDArray[np.uint8]:
    """A smooth image: chroma subsampling loses almost nothing on it."""
    yy, xx = np.mgrid[0:height, 0:width]
    r = 30 + xx * 190 // width
    g = 40 + yy * 170 // height
    b = 200 - (xx + yy) * 150 // (width + height)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def bt601_limited_yuv(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Reference BT.601 limited-range Y, Cb, Cr per pixel (independent of PyAV)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.stack([y, cb, cr], axis=-1)


def max_diff(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# -- conversions -----------------------------------------------------------------


def test_rgb_yuv_rgb_round_trip_is_close_and_keeps_timing() -> None:
    rgb = smooth_rgb()
    frame = VideoFrame.from_ndarray(rgb, pts=1234, time_base=TB)
    yuv = frame.reformat(PixelFormat.YUV420P)
    assert yuv.format is PixelFormat.YUV420P
    assert [p.shape for p in yuv.plane_arrays] == [(48, 64), (24, 32), (24, 32)]
    back = yuv.reformat("rgb24")
    assert max_diff(back.to_ndarray(), rgb) <= 6
    assert (back.pts, back.time_base) == (1234, TB)
    assert yuv.time == pytest.approx(1234 / 90000)


def test_yuv_conversion_uses_bt601_limited_range() -> None:
    rgb = smooth_rgb()
    yuv = VideoFrame.from_ndarray(rgb).reformat("yuv420p")
    expected = bt601_limited_yuv(rgb)
    y_plane, u_plane, v_plane = yuv.plane_arrays
    assert np.abs(y_plane - expected[..., 0]).max() <= 2
    # Chroma is one sample per 2x2 block: compare with the block average.
    cb_ref = expected[..., 1].reshape(24, 2, 32, 2).mean(axis=(1, 3))
    cr_ref = expected[..., 2].reshape(24, 2, 32, 2).mean(axis=(1, 3))
    assert np.abs(u_plane - cb_ref).max() <= 3
    assert np.abs(v_plane - cr_ref).max() <= 3


def test_pure_red_has_bt601_codes() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    y, u, v = (int(p[0, 0]) for p in VideoFrame.from_ndarray(red).reformat("yuv420p").plane_arrays)
    assert abs(y - 81) <= 1 and abs(u - 90) <= 1 and abs(v - 240) <= 1
    back = VideoFrame.from_ndarray(red).reformat("yuv420p").to_ndarray("rgb24")
    assert back[0, 0, 0] >= 250 and back[0, 0, 1:].max() <= 4


def test_pil_round_trip_is_exact_and_keeps_pts() -> None:
    rgb = smooth_rgb()
    frame = VideoFrame.from_ndarray(rgb, pts=7, time_base=TB)
    image = frame.to_image()
    assert image.mode == "RGB" and image.size == (64, 48)
    again = VideoFrame.from_image(image, pts=frame.pts, time_base=frame.time_base)
    assert again == frame


def test_from_image_converts_other_modes() -> None:
    rgba = Image.new("RGBA", (10, 6), (10, 20, 30, 40))
    frame = VideoFrame.from_image(rgba)
    assert frame.format is PixelFormat.RGB24
    assert frame.to_ndarray()[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize("fmt", [PixelFormat.RGB24, PixelFormat.YUV420P])
def test_av_round_trip_is_exact_and_keeps_timing(fmt: PixelFormat) -> None:
    frame = VideoFrame.from_ndarray(smooth_rgb(), pts=99, time_base=TB).reformat(fmt)
    av_frame = frame.to_av()
    assert av_frame.format.name == fmt.value
    assert (av_frame.pts, av_frame.time_base) == (99, TB)
    assert VideoFrame.from_av(av_frame) == frame


def test_from_av_strips_row_padding() -> None:
    rgb = smooth_rgb(width=6, height=4)
    av_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    assert av_frame.planes[0].line_size > 6 * 3  # PyAV aligns rows
    assert np.array_equal(VideoFrame.from_av(av_frame).to_ndarray(), rgb)


def test_full_rgb_yuv_pil_av_chain_stays_close() -> None:
    rgb = smooth_rgb()
    frame = VideoFrame.from_ndarray(rgb, pts=5, time_base=TB)
    via_av = VideoFrame.from_av(frame.reformat("yuv420p").to_av())
    via_pil = VideoFrame.from_image(via_av.to_image(), via_av.pts, via_av.time_base)
    assert max_diff(via_pil.to_ndarray(), rgb) <= 6
    assert (via_pil.pts, via_pil.time_base) == (5, TB)


def test_from_av_normalises_other_formats() -> None:
    rgb = smooth_rgb()
    source = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    nv12 = VideoFrame.from_av(source.reformat(format="nv12"))
    assert nv12.format is PixelFormat.YUV420P
    assert max_diff(nv12.to_ndarray(), rgb) <= 8
    full_range = VideoFrame.from_av(source.reformat(format="yuvj420p"))
    assert max_diff(full_range.to_ndarray(), rgb) <= 8
    rgba = VideoFrame.from_av(source.reformat(format="rgba"))
    assert rgba.format is PixelFormat.RGB24 and max_diff(rgba.to_ndarray(), rgb) <= 1
    odd = VideoFrame.from_av(av.VideoFrame(7, 5, "yuv420p"))
    assert odd.format is PixelFormat.RGB24 and (odd.width, odd.height) == (7, 5)


def test_i420_ndarray_layout_round_trips() -> None:
    yuv = VideoFrame.from_ndarray(smooth_rgb()).reformat("yuv420p")
    packed = yuv.to_ndarray("yuv420p")
    assert packed.shape == (72, 64)
    assert VideoFrame.from_ndarray(packed, "yuv420p") == yuv


def test_bgr24_output_for_opencv_code() -> None:
    rgb = smooth_rgb()
    bgr = VideoFrame.from_ndarray(rgb).to_ndarray("bgr24")
    assert np.array_equal(bgr, rgb[:, :, ::-1])


# -- immutability ----------------------------------------------------------------


def test_frame_is_immutable_and_exports_are_private_copies() -> None:
    rgb = smooth_rgb()
    frame = VideoFrame.from_ndarray(rgb)
    rgb[0, 0] = 0  # from_ndarray copied: the frame does not change
    assert frame.to_ndarray()[0, 0].tolist() != [0, 0, 0]
    with pytest.raises(ValueError):
        frame.plane_arrays[0][0, 0, 0] = 1
    out = frame.to_ndarray()
    out[:] = 0
    assert frame.to_ndarray().any()


def test_reformat_to_same_format_returns_same_frame() -> None:
    frame = VideoFrame.from_ndarray(smooth_rgb())
    assert frame.reformat("rgb24") is frame


# -- wire planes -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", [PixelFormat.RGB24, PixelFormat.YUV420P])
def test_planes_round_trip_without_copy(fmt: PixelFormat) -> None:
    frame = VideoFrame.from_ndarray(smooth_rgb(), pts=3, time_base=TB).reformat(fmt)
    planes = frame.planes()
    assert all(isinstance(p, memoryview) and p.readonly and p.ndim == 1 for p in planes)
    assert sum(p.nbytes for p in planes) == frame.nbytes
    rebuilt = VideoFrame.from_planes(planes, frame.width, frame.height, fmt, 3, TB)
    assert rebuilt == frame
    assert np.shares_memory(rebuilt.plane_arrays[0], frame.plane_arrays[0])
    received = [bytearray(p) for p in planes]  # as if they came off a socket
    assert VideoFrame.from_planes(received, frame.width, frame.height, fmt, 3, TB) == frame


def test_from_planes_rejects_wrong_sizes() -> None:
    y, u, v = bytes(64 * 48), bytes(32 * 24), bytes(32 * 24)
    with pytest.raises(ValueError, match=r"plane 1 \(U\) expects 768 bytes, received 767"):
        VideoFrame.from_planes([y, u[:-1], v], 64, 48, "yuv420p")
    with pytest.raises(ValueError, match=r"plane 0 \(Y\) expects 3072 bytes, received 3073"):
        VideoFrame.from_planes([y + b"\0", u, v], 64, 48, "yuv420p")
    with pytest.raises(ValueError, match=r"expects 9216 bytes, received 3072"):
        VideoFrame.from_planes([y], 64, 48, "rgb24")
    with pytest.raises(ValueError, match="needs 3 plane"):
        VideoFrame.from_planes([y, u], 64, 48, "yuv420p")
    with pytest.raises(TypeError, match="bytes-like"):
        VideoFrame.from_planes(["text"], 1, 1, "rgb24")
    with pytest.raises(ValueError, match="width must be in"):
        VideoFrame.from_planes([b""], 10**6, 1, "rgb24")


# -- validation ------------------------------------------------------------------


def test_bad_input_names_the_problem() -> None:
    rgb = smooth_rgb()
    with pytest.raises(TypeError, match="dtype uint8, got float32"):
        VideoFrame.from_ndarray(rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(height, width, 3\), got \(48, 64, 2\)"):
        VideoFrame.from_ndarray(rgb[..., :2])
    with pytest.raises(ValueError, match="even width and height, got 63x47"):
        VideoFrame.from_ndarray(rgb[:47, :63]).reformat("yuv420p")
    with pytest.raises(ValueError, match="unknown pixel format 'nv21'"):
        VideoFrame.from_ndarray(rgb, "nv21")
    with pytest.raises(TypeError, match="pts must be an int"):
        VideoFrame.from_ndarray(rgb, pts=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_base must be positive"):
        VideoFrame.from_ndarray(rgb, time_base=Fraction(0))
    with pytest.raises(TypeError, match="numpy array"):
        VideoFrame.from_ndarray([[1, 2, 3]])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"av\.VideoFrame"):
        VideoFrame.from_av(rgb)  # type: ignore[arg-type]


# -- checksum --------------------------------------------------------------------


def test_checksum_tracks_content() -> None:
    rgb = smooth_rgb()
    a = VideoFrame.from_ndarray(rgb).reformat("yuv420p")
    b = VideoFrame.from_ndarray(rgb.copy()).reformat("yuv420p")
    assert a.checksum() == b.checksum()
    planes = [bytearray(p) for p in a.planes()]
    planes[2][100] ^= 1  # one byte of V
    changed = VideoFrame.from_planes(planes, a.width, a.height, "yuv420p")
    assert changed.checksum() != a.checksum()
    flat = np.zeros((4, 6, 3), np.uint8)
    assert (
        VideoFrame.from_ndarray(flat).checksum()
        != VideoFrame.from_ndarray(flat.reshape(6, 4, 3)).checksum()
    )


# -- JPEG ------------------------------------------------------------------------


def test_frame_to_jpeg_bytes_decodes_to_the_frame() -> None:
    rgb = smooth_rgb()
    data = frame_to_jpeg_bytes(VideoFrame.from_ndarray(rgb).reformat("yuv420p"), quality=90)
    assert data[:2] == b"\xff\xd8"
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 4


def test_frame_to_jpeg_bytes_limits_size_keeping_aspect() -> None:
    frame = VideoFrame.from_ndarray(smooth_rgb(640, 360))
    longest = Image.open(io.BytesIO(frame_to_jpeg_bytes(frame, max_size=320)))
    assert longest.size == (320, 180)
    boxed = Image.open(io.BytesIO(frame_to_jpeg_bytes(frame, max_size=(100, 100))))
    assert boxed.size == (100, 56)
    unchanged = Image.open(io.BytesIO(frame_to_jpeg_bytes(frame, max_size=4096)))
    assert unchanged.size == (640, 360)
    from_av = Image.open(io.BytesIO(frame_to_jpeg_bytes(frame.to_av(), max_size=64)))
    assert from_av.size == (64, 36)
    with pytest.raises(ValueError, match="quality"):
        frame_to_jpeg_bytes(frame, quality=0)
    with pytest.raises(ValueError, match="max_size"):
        frame_to_jpeg_bytes(frame, max_size=0)

"""The video frame type that plugins see and that crosses process boundaries.

A :class:`VideoFrame` holds its pixels as one C-contiguous ``uint8`` numpy array
per plane, so a wire codec can send each plane as its own zero-copy ZeroMQ
frame (:meth:`VideoFrame.planes`) and rebuild the frame on the other side
without copying (:meth:`VideoFrame.from_planes`).

Two pixel formats are supported:

* ``rgb24``: one plane of shape ``(height, width, 3)``.
* ``yuv420p``: planes Y ``(height, width)``, U and V ``(height/2, width/2)``;
  width and height must be even. Colours are BT.601, limited ("TV") range,
  which is what WebRTC decoders and most camera pipelines produce.

Frames are immutable: their plane arrays are read-only views, so one frame can
be shared by several consumers (forwarder handlers, replicas) safely. Methods
that return an ``ndarray`` for the caller to use return a fresh, writable copy.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from enum import StrEnum
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    # PyAV and Pillow are imported only by the conversions that need them: an
    # idle actor process should not pay ~22 MB RSS for them (issue #6).
    import av
    from PIL import Image

__all__ = ["MAX_DIMENSION", "PixelFormat", "PlaneArray", "VideoFrame", "is_av_video_frame"]

PlaneArray = npt.NDArray[np.uint8]

#: Largest accepted width or height: rejects absurd sizes before allocating.
MAX_DIMENSION: Final = 16384

# swscale names for the colour convention of our yuv420p frames.
_YUV_COLORSPACE: Final = "ITU601"
_YUV_RANGE: Final = "MPEG"
# libavutil AVColorSpace / AVColorRange values that already match BT.601 limited.
_BT601_COLORSPACES: Final = frozenset({2, 5, 6})  # unspecified, bt470bg, smpte170m
_AVCOL_SPC_SMPTE170M: Final = 6
_AVCOL_RANGE_MPEG: Final = 1
_AVCOL_RANGE_JPEG: Final = 2


def is_av_video_frame(obj: object) -> TypeGuard[av.VideoFrame]:
    """True if ``obj`` is a PyAV ``VideoFrame``, without importing PyAV.

    An object of a PyAV type can only exist once ``av`` has been imported, so
    when it is not in ``sys.modules`` the answer is no.
    """
    av_module = sys.modules.get("av")
    return av_module is not None and isinstance(obj, av_module.VideoFrame)


class PixelFormat(StrEnum):
    """Pixel layouts a :class:`VideoFrame` can hold."""

    RGB24 = "rgb24"
    YUV420P = "yuv420p"

    @classmethod
    def parse(cls, value: PixelFormat | str) -> PixelFormat:
        """``value`` as a PixelFormat; an unknown name raises a ValueError listing the known."""
        if isinstance(value, PixelFormat):
            return value
        for member in cls:
            if member.value == value:
                return member
        supported = ", ".join(f.value for f in cls)
        raise ValueError(f"unknown pixel format {value!r}; supported: {supported}")


_coerce_format = PixelFormat.parse


def _plane_shapes(fmt: PixelFormat, width: int, height: int) -> list[tuple[int, ...]]:
    if fmt is PixelFormat.RGB24:
        return [(height, width, 3)]
    chroma = (height // 2, width // 2)
    return [(height, width), chroma, chroma]


def _plane_names(fmt: PixelFormat) -> tuple[str, ...]:
    return ("RGB",) if fmt is PixelFormat.RGB24 else ("Y", "U", "V")


def _check_dimension(label: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"VideoFrame {label} must be an int, got {type(value).__name__}")
    if not 0 < int(value) <= MAX_DIMENSION:
        raise ValueError(f"VideoFrame {label} must be in 1..{MAX_DIMENSION}, got {value}")
    return int(value)


def _check_dimensions(fmt: PixelFormat, width: object, height: object) -> tuple[int, int]:
    w, h = _check_dimension("width", width), _check_dimension("height", height)
    if fmt is PixelFormat.YUV420P and (w % 2 or h % 2):
        raise ValueError(f"yuv420p needs even width and height, got {w}x{h}")
    return w, h


def _check_pts(pts: object) -> int | None:
    if pts is None:
        return None
    if isinstance(pts, bool) or not isinstance(pts, int | np.integer):
        raise TypeError(f"VideoFrame pts must be an int or None, got {type(pts).__name__}")
    return int(pts)


def _check_time_base(time_base: object) -> Fraction | None:
    if time_base is None:
        return None
    if isinstance(time_base, bool) or not isinstance(time_base, Fraction | int):
        raise TypeError(
            f"VideoFrame time_base must be a fractions.Fraction or None, "
            f"got {type(time_base).__name__}"
        )
    result = Fraction(time_base)
    if result <= 0:
        raise ValueError(f"VideoFrame time_base must be positive, got {result}")
    return result


def _readonly_plane(arr: object, index: int, name: str, shape: tuple[int, ...]) -> PlaneArray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"plane {index} ({name}) must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.uint8:
        raise TypeError(f"plane {index} ({name}) must have dtype uint8, got {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"plane {index} ({name}) must have shape {shape}, got {arr.shape}")
    view: PlaneArray = np.ascontiguousarray(arr).view()
    view.flags.writeable = False
    return view


def _av_plane_array(plane: Any) -> PlaneArray:
    # Typed Any: PyAV's stubs do not declare that planes support the buffer protocol.
    return np.frombuffer(plane, dtype=np.uint8)


def _strided_rows(buf: PlaneArray, rows: int, row_bytes: int, line_size: int) -> PlaneArray:
    """View ``rows`` rows of ``row_bytes`` inside a padded av plane buffer."""
    needed = line_size * (rows - 1) + row_bytes
    if buf.size < needed:
        raise ValueError(f"av plane holds {buf.size} bytes, needs at least {needed}")
    return np.lib.stride_tricks.as_strided(
        buf, shape=(rows, row_bytes), strides=(line_size, 1), writeable=buf.flags.writeable
    )


def _read_av_planes(frame: av.VideoFrame, fmt: PixelFormat) -> list[PlaneArray]:
    """Copy an av frame's planes (which may carry row padding) into packed arrays."""
    shapes = _plane_shapes(fmt, frame.width, frame.height)
    out: list[PlaneArray] = []
    for plane, shape in zip(frame.planes, shapes, strict=True):
        row_bytes = int(np.prod(shape[1:]))
        buf = _av_plane_array(plane)
        rows = _strided_rows(buf, shape[0], row_bytes, plane.line_size)
        out.append(rows.copy().reshape(shape))
    return out


def _write_av_planes(frame: av.VideoFrame, planes: Sequence[PlaneArray]) -> None:
    for plane, src in zip(frame.planes, planes, strict=True):
        row_bytes = int(np.prod(src.shape[1:]))
        buf = _av_plane_array(plane)
        rows = _strided_rows(buf, src.shape[0], row_bytes, plane.line_size)
        rows[...] = src.reshape(src.shape[0], row_bytes)


def _av_is_bt601_limited(frame: av.VideoFrame) -> bool:
    return frame.colorspace in _BT601_COLORSPACES and frame.color_range != _AVCOL_RANGE_JPEG


def _default_target(frame: av.VideoFrame) -> PixelFormat:
    name = frame.format.name
    if name == PixelFormat.RGB24.value:
        return PixelFormat.RGB24
    even = frame.width % 2 == 0 and frame.height % 2 == 0
    if even and name.startswith(("yuv", "nv")):
        return PixelFormat.YUV420P
    return PixelFormat.RGB24


def _convert_av(frame: av.VideoFrame, target: PixelFormat) -> av.VideoFrame:
    """Convert an av frame to ``target``; swscale reads the source's colour metadata."""
    if target is PixelFormat.RGB24:
        return frame.reformat(format=target.value)
    return frame.reformat(
        format=target.value, dst_colorspace=_YUV_COLORSPACE, dst_color_range=_YUV_RANGE
    )


class VideoFrame:
    """An immutable video frame: pixel planes, size, format and timing.

    Build one with :meth:`from_ndarray`, :meth:`from_image`, :meth:`from_av` or
    :meth:`from_planes`. The constructor takes already-split planes and does not
    copy them (it stores read-only views); every input is validated and a
    mistake raises ``TypeError`` / ``ValueError`` naming the problem.
    """

    __slots__ = ("_format", "_height", "_planes", "_pts", "_time_base", "_width")

    def __init__(
        self,
        planes: Sequence[PlaneArray],
        width: int,
        height: int,
        format: PixelFormat | str = PixelFormat.RGB24,
        pts: int | None = None,
        time_base: Fraction | None = None,
    ) -> None:
        fmt = _coerce_format(format)
        w, h = _check_dimensions(fmt, width, height)
        shapes = _plane_shapes(fmt, w, h)
        names = _plane_names(fmt)
        if len(planes) != len(shapes):
            raise ValueError(f"{fmt.value} needs {len(shapes)} plane(s), got {len(planes)}")
        self._planes: tuple[PlaneArray, ...] = tuple(
            _readonly_plane(arr, i, names[i], shapes[i]) for i, arr in enumerate(planes)
        )
        self._width = w
        self._height = h
        self._format = fmt
        self._pts = _check_pts(pts)
        self._time_base = _check_time_base(time_base)

    # -- attributes -------------------------------------------------------------

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self._height

    @property
    def format(self) -> PixelFormat:
        """Pixel format of the planes."""
        return self._format

    @property
    def pts(self) -> int | None:
        """Presentation timestamp in units of :attr:`time_base`, if known."""
        return self._pts

    @property
    def time_base(self) -> Fraction | None:
        """Seconds per :attr:`pts` unit, if known."""
        return self._time_base

    @property
    def time(self) -> float | None:
        """Presentation time in seconds (``pts * time_base``), or None."""
        if self._pts is None or self._time_base is None:
            return None
        return float(self._pts * self._time_base)

    @property
    def plane_arrays(self) -> tuple[PlaneArray, ...]:
        """The planes as read-only numpy arrays in their natural shapes."""
        return self._planes

    @property
    def nbytes(self) -> int:
        """Total pixel bytes over all planes."""
        return sum(p.nbytes for p in self._planes)

    # -- construction -----------------------------------------------------------

    @classmethod
    def from_ndarray(
        cls,
        arr: npt.NDArray[Any],
        format: PixelFormat | str = PixelFormat.RGB24,
        pts: int | None = None,
        time_base: Fraction | None = None,
        *,
        copy: bool = True,
    ) -> VideoFrame:
        """Build a frame from one array.

        ``rgb24`` takes shape ``(height, width, 3)``; ``yuv420p`` takes the packed
        I420 layout PyAV uses, shape ``(height * 3 // 2, width)``. The array is
        copied unless ``copy=False`` (then the caller must not modify it later).
        """
        fmt = _coerce_format(format)
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"from_ndarray needs a numpy array, got {type(arr).__name__}")
        if arr.dtype != np.uint8:
            raise TypeError(f"from_ndarray needs dtype uint8, got {arr.dtype}")
        data = np.array(arr, copy=True, order="C") if copy else np.ascontiguousarray(arr)
        if fmt is PixelFormat.RGB24:
            if data.ndim != 3 or data.shape[2] != 3:
                raise ValueError(f"rgb24 array must have shape (height, width, 3), got {arr.shape}")
            return cls([data], data.shape[1], data.shape[0], fmt, pts, time_base)
        return cls._from_i420(data, pts, time_base)

    @classmethod
    def _from_i420(
        cls, data: PlaneArray, pts: int | None, time_base: Fraction | None
    ) -> VideoFrame:
        if data.ndim != 2 or data.shape[0] % 3:
            raise ValueError(
                f"yuv420p array must have shape (height * 3 // 2, width), got {data.shape}"
            )
        height, width = data.shape[0] * 2 // 3, data.shape[1]
        _check_dimensions(PixelFormat.YUV420P, width, height)
        flat = data.reshape(-1)
        luma, chroma = height * width, (height // 2) * (width // 2)
        y = flat[:luma].reshape(height, width)
        u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
        v = flat[luma + chroma :].reshape(height // 2, width // 2)
        return cls([y, u, v], width, height, PixelFormat.YUV420P, pts, time_base)

    @classmethod
    def from_planes(
        cls,
        planes: Sequence[Any],
        width: int,
        height: int,
        format: PixelFormat | str = PixelFormat.RGB24,
        pts: int | None = None,
        time_base: Fraction | None = None,
        *,
        copy: bool = False,
    ) -> VideoFrame:
        """Rebuild a frame from raw plane buffers (the inverse of :meth:`planes`).

        Each plane may be any C-contiguous bytes-like object (bytes, bytearray,
        memoryview, numpy array, ``zmq.Frame``). Sizes are checked exactly: a
        wrong size raises ``ValueError`` naming the expected and received bytes.
        Without ``copy`` the frame views the buffers, so they must stay unchanged.
        """
        fmt = _coerce_format(format)
        w, h = _check_dimensions(fmt, width, height)
        shapes = _plane_shapes(fmt, w, h)
        names = _plane_names(fmt)
        if len(planes) != len(shapes):
            raise ValueError(f"{fmt.value} needs {len(shapes)} plane(s), got {len(planes)}")
        arrays = [
            _buffer_to_plane(buf, shape, f"{fmt.value} {w}x{h} plane {i} ({names[i]})", copy)
            for i, (buf, shape) in enumerate(zip(planes, shapes, strict=True))
        ]
        return cls(arrays, w, h, fmt, pts, time_base)

    @classmethod
    def from_image(
        cls, image: Image.Image, pts: int | None = None, time_base: Fraction | None = None
    ) -> VideoFrame:
        """Build an rgb24 frame from a PIL image (other modes are converted to RGB)."""
        from PIL import Image

        if not isinstance(image, Image.Image):
            raise TypeError(f"from_image needs a PIL.Image.Image, got {type(image).__name__}")
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls.from_ndarray(np.asarray(rgb), PixelFormat.RGB24, pts, time_base, copy=False)

    @classmethod
    def from_av(cls, frame: av.VideoFrame, format: PixelFormat | str | None = None) -> VideoFrame:
        """Copy a PyAV frame into a :class:`VideoFrame`, keeping pts and time_base.

        Without ``format``, rgb24 and yuv420p frames keep their format, other YUV
        layouts with even dimensions become yuv420p and everything else rgb24.
        YUV input in another colour space or full range is converted to BT.601
        limited range.
        """
        if not is_av_video_frame(frame):
            raise TypeError(f"from_av needs an av.VideoFrame, got {type(frame).__name__}")
        target = _default_target(frame) if format is None else _coerce_format(format)
        _check_dimensions(target, frame.width, frame.height)
        source = frame
        keep = frame.format.name == target.value and (
            target is PixelFormat.RGB24 or _av_is_bt601_limited(frame)
        )
        if not keep:
            source = _convert_av(frame, target)
        planes = _read_av_planes(source, target)
        return cls(planes, frame.width, frame.height, target, frame.pts, frame.time_base)

    def with_timing(self, pts: int | None, time_base: Fraction | None = None) -> VideoFrame:
        """The same pixels (shared, not copied) with another pts / time_base."""
        return VideoFrame(
            self._planes,
            self._width,
            self._height,
            self._format,
            pts,
            self._time_base if time_base is None else time_base,
        )

    # -- export -----------------------------------------------------------------

    def planes(self) -> list[memoryview]:
        """One flat, read-only, zero-copy buffer per plane (for the wire codec)."""
        return [p.reshape(-1).data for p in self._planes]

    def to_ndarray(self, format: PixelFormat | str = PixelFormat.RGB24) -> PlaneArray:
        """A fresh, writable array of the pixels in ``format``.

        ``rgb24`` gives ``(height, width, 3)``; ``yuv420p`` gives the packed I420
        layout ``(height * 3 // 2, width)``. ``"bgr24"`` is also accepted as an
        output (OpenCV order) for code ported from PyAV frames.
        """
        if format == "bgr24":
            return np.ascontiguousarray(self.to_ndarray(PixelFormat.RGB24)[:, :, ::-1])
        fmt = _coerce_format(format)
        frame = self.reformat(fmt)
        if fmt is PixelFormat.RGB24:
            return frame._planes[0].copy()
        return np.concatenate([p.reshape(-1) for p in frame._planes]).reshape(-1, self._width)

    def to_image(self) -> Image.Image:
        """The frame as an RGB PIL image."""
        from PIL import Image

        return Image.fromarray(self.to_ndarray(PixelFormat.RGB24))

    def to_av(self) -> av.VideoFrame:
        """The frame as a new PyAV frame (pts, time_base and colour metadata set)."""
        import av

        frame = av.VideoFrame(self._width, self._height, self._format.value)
        _write_av_planes(frame, self._planes)
        if self._format is PixelFormat.YUV420P:
            frame.colorspace = _AVCOL_SPC_SMPTE170M
            frame.color_range = _AVCOL_RANGE_MPEG
        frame.pts = self._pts
        if self._time_base is not None:
            frame.time_base = self._time_base
        return frame

    def reformat(self, format: PixelFormat | str) -> VideoFrame:
        """This frame in another pixel format (``self`` if it already is)."""
        fmt = _coerce_format(format)
        if fmt is self._format:
            return self
        _check_dimensions(fmt, self._width, self._height)
        converted = _convert_av(self.to_av(), fmt)
        planes = _read_av_planes(converted, fmt)
        return VideoFrame(planes, self._width, self._height, fmt, self._pts, self._time_base)

    def checksum(self) -> int:
        """CRC-32 over format, size and pixels: equal frames give equal sums."""
        crc = zlib.crc32(f"{self._format.value}:{self._width}x{self._height}".encode())
        for plane in self._planes:
            crc = zlib.crc32(plane.data, crc)
        return crc

    # -- dunder -----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VideoFrame):
            return NotImplemented
        return (
            self._format is other._format
            and self._width == other._width
            and self._height == other._height
            and self._pts == other._pts
            and self._time_base == other._time_base
            and all(np.array_equal(a, b) for a, b in zip(self._planes, other._planes, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"VideoFrame({self._format.value} {self._width}x{self._height}, "
            f"pts={self._pts}, time_base={self._time_base})"
        )


def _buffer_to_plane(buf: Any, shape: tuple[int, ...], label: str, copy: bool) -> PlaneArray:
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError(f"{label} must be a bytes-like object, got {type(buf).__name__}") from None
    if not view.c_contiguous:
        raise ValueError(f"{label} must be a C-contiguous buffer")
    expected = int(np.prod(shape))
    if view.nbytes != expected:
        raise ValueError(f"{label} expects {expected} bytes, received {view.nbytes}")
    arr = np.frombuffer(view.cast("B") if view.ndim != 1 or view.format != "B" else view, np.uint8)
    arr = arr.reshape(shape)
    return arr.copy() if copy else arr

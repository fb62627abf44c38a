"""Frame sources: a video file, an image folder, a camera index or an RTSP/HTTP URL, as BGR frames.

Video files decode with PyAV when it is installed: FFmpeg's threaded decoder, and frames that convert
YUV -> BGR only at the size asked for (`Frame.resized`: the model's input, in one swscale pass), so
a 1080p frame is never converted at full size unless a sink draws on it. OpenCV reads everything else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prodseg.data.imageio import IMAGE_EXTS
from prodseg.errors import BadInput


@dataclass
class Frame:
    """One decoded frame: BGR uint8 (H, W, 3), its index and presentation time in seconds."""

    index: int
    image: np.ndarray
    timestamp_s: float
    name: str | None = None  # the image's file stem for an image folder; None for video frames

    @property
    def size_hw(self) -> tuple[int, int]:
        """(H, W) of the full frame."""
        return self.image.shape[0], self.image.shape[1]

    def resized(self, size_wh: tuple[int, int]) -> np.ndarray:
        """The frame as BGR uint8 at (W, H): bilinear, the frame itself when the size already matches."""
        if (self.image.shape[1], self.image.shape[0]) == tuple(size_wh):
            return self.image
        return cv2.resize(self.image, tuple(size_wh), interpolation=cv2.INTER_LINEAR)


class AvFrame(Frame):
    """A decoded PyAV frame, converted to BGR lazily: at full size only when `image` is read."""

    def __init__(self, index: int, frame: Any, timestamp_s: float) -> None:
        self.index, self.timestamp_s = index, timestamp_s
        self._av, self._image = frame, None

    @property
    def image(self) -> np.ndarray:  # type: ignore[override]  # the field, made lazy
        if self._image is None:
            self._image = self._av.to_ndarray(format="bgr24")
        assert self._image is not None
        return self._image

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self._av.height), int(self._av.width)

    def resized(self, size_wh: tuple[int, int]) -> np.ndarray:
        """Scaled and converted from YUV in one swscale pass, area-averaged (as ultralytics' training
        loader shrinks images). 1080p -> 640x360 took 1.2 ms here, against 2.1 ms for BGR at full size
        plus cv2's bilinear resize and 4.2 ms for swscale's bilinear filter."""
        w, h = int(size_wh[0]), int(size_wh[1])
        if (w, h) == (self._av.width, self._av.height):
            return self.image
        return self._av.to_ndarray(format="bgr24", width=w, height=h, interpolation="AREA")


class FrameSource:
    """Iterable of Frames; `decode_error` is the index where decoding stopped early, else None."""

    name = "source"
    fps: float = 0.0
    frame_count: int | None = None
    size: tuple[int, int] = (0, 0)  # (W, H)
    is_live = False

    def __init__(self) -> None:
        self.decode_error: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class CaptureSource(FrameSource):
    """OpenCV VideoCapture over a file, camera or URL; rotation metadata applied (phone videos)."""

    def __init__(self, target: str | int, name: str, live: bool):
        super().__init__()
        self.name, self.is_live = name, live
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            what = "camera" if isinstance(target, int) else "video"
            raise BadInput(f"{name}: cannot open this {what} (missing, unreadable or an unsupported codec)")
        self.cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # apply rotation metadata of portrait phone videos
        ok, self._first = self.cap.read()
        if not ok:
            self.cap.release()
            raise BadInput(f"{name}: opened but no frame decodes; the file is corrupt or the device is busy")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not live else None
        self.size = (self._first.shape[1], self._first.shape[0])

    def __iter__(self) -> Iterator[Frame]:
        image: np.ndarray | None = self._first
        index, t0 = 0, time.monotonic()
        last_pos, max_gap = 0.0, 0.0
        while image is not None:
            pos = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            max_gap, last_pos = (max(max_gap, pos - last_pos), pos) if index else (0.0, pos)
            stamp = time.monotonic() - t0 if self.is_live else pos  # container time: right for VFR videos
            yield Frame(index, image, stamp)
            index += 1
            ok, image = self.cap.read()
            if not ok:
                image = None
        if not self.is_live and stopped_early(index, self.frame_count, self.fps, last_pos, max_gap):
            self.decode_error = index

    def close(self) -> None:
        self.cap.release()


# FFmpeg decoder threads for video files. On few cores inference needs them all: one decoding thread used
# 9 % less CPU per 1080p H.264 frame than FFmpeg's automatic frame threading on a 2-core EPYC (6.3 vs
# 6.9 ms). With more cores, 0 = FFmpeg's choice (one per core) lowers decode latency.
DECODE_THREADS = 1 if (os.cpu_count() or 1) <= 4 else 0


class _Rotated(Exception):
    """The file asks for a rotation on display: OpenCV applies it, so it reads such files."""


def _av_frame_count(stream: Any, fps: float) -> int | None:
    """The container's exact count, else duration x nominal FPS (as OpenCV estimates it), else None."""
    if stream.frames:
        return int(stream.frames)
    duration = stream.duration * stream.time_base if stream.duration else None
    if duration is None and stream.container.duration:
        duration = stream.container.duration / 1_000_000
    return round(float(duration) * fps) if duration and fps > 0 else None


class AvSource(FrameSource):
    """A video file through PyAV: threaded decoding, frames converted lazily at the size asked for."""

    def __init__(self, path: str, name: str, threads: int = DECODE_THREADS):
        super().__init__()
        import av

        self.name, self._av_error = name, av.FFmpegError
        try:
            self.container = av.open(path)
            self.stream = self.container.streams.video[0]
        except (av.FFmpegError, IndexError, UnicodeDecodeError) as exc:
            raise BadInput(
                f"{name}: cannot open this video (missing, unreadable or an unsupported codec)"
            ) from exc
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        self._decoded = self.container.decode(self.stream)
        self._first = self._next()
        if self._first is None:
            self.container.close()
            raise BadInput(f"{name}: opened but no frame decodes; the file is corrupt or the device is busy")
        if self._first.rotation:
            self.container.close()
            raise _Rotated(name)
        self.fps = float(self.stream.average_rate or 0.0)
        self.frame_count = _av_frame_count(self.stream, self.fps)
        self.size = (self._first.width, self._first.height)

    def _next(self) -> Any:
        """The next decoded frame; None at the end or where the data stops decoding."""
        try:
            return next(self._decoded, None)
        except self._av_error:
            return None

    def __iter__(self) -> Iterator[Frame]:
        frame, index, start = self._first, 0, self._first.time or 0.0
        last_pos, max_gap = 0.0, 0.0
        while frame is not None:
            pos = (frame.time or 0.0) - start
            max_gap, last_pos = (max(max_gap, pos - last_pos), pos) if index else (0.0, pos)
            yield AvFrame(index, frame, pos)
            index += 1
            frame = self._next()
        if stopped_early(index, self.frame_count, self.fps, last_pos, max_gap):
            self.decode_error = index

    def close(self) -> None:
        self.container.close()


def open_video(path: str, name: str) -> FrameSource:
    """PyAV when installed (threaded, converts at the model's size), else OpenCV; OpenCV for rotated files."""
    try:
        return AvSource(path, name)
    except (ImportError, _Rotated):
        return CaptureSource(path, name, live=False)


def stopped_early(
    decoded: int, frame_count: int | None, fps: float, last_pos_s: float, max_gap_s: float
) -> bool:
    """Whether a file's decoding ended before its end: fewer frames than counted AND time left over.

    OpenCV's frame count is the container's exact count (MP4) or duration x nominal FPS (Matroska,
    WebM, TS). A variable-frame-rate file of the second kind decodes fewer frames than that estimate
    but its last frame still lies within one (largest seen) frame gap of the duration; a truncated or
    corrupt file stops short of it.
    """
    if frame_count is None or decoded >= frame_count:
        return False
    if fps <= 0:
        return True
    frame_s = 1.0 / fps
    return last_pos_s + max(max_gap_s, frame_s) + 0.5 * frame_s < frame_count * frame_s


class ImageFolderSource(FrameSource):
    """Image files in name order; an unreadable one stops the source and is reported as decode_error."""

    def __init__(self, files: list[Path], name: str, fps: float = 0.0):
        super().__init__()
        self.name, self.files = name, files
        if not files:
            raise BadInput(f"{name}: no images ({', '.join(sorted(IMAGE_EXTS))}) in this folder")
        self.frame_count, self.fps = len(files), fps
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise BadInput(f"{files[0]}: cannot decode this image")
        self.size = (first.shape[1], first.shape[0])

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.decode_error = i
                return
            yield Frame(i, image, i / self.fps if self.fps else float(i), name=path.stem)


def _is_url(spec: str) -> bool:
    return spec.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp")


def _open_path(spec: str) -> FrameSource:
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS), spec)
    if not path.is_file():
        raise BadInput(f"{spec}: no such video, image folder, camera index or URL")
    if path.suffix.lower() in IMAGE_EXTS:
        return ImageFolderSource([path], spec)
    return open_video(str(path), spec)


# (does this spec name it?, how to open it): checked in order.
OPENERS: list[tuple[Callable[[str], bool], Callable[[str], FrameSource]]] = [
    (str.isdigit, lambda s: CaptureSource(int(s), f"camera {s}", live=True)),
    (_is_url, lambda s: CaptureSource(s, s, live=True)),
    (lambda s: True, _open_path),
]


def open_source(spec: str | Path) -> FrameSource:
    """A video path, an image (folder), a camera index ('0') or an rtsp/http URL -> FrameSource."""
    spec = str(spec)
    return next(opener for match, opener in OPENERS if match(spec))(spec)

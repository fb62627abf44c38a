"""Frame sources: a video file, an image folder, a camera index or an RTSP/HTTP URL, as BGR frames."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
        image, index, t0 = self._first, 0, time.monotonic()
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


def stopped_early(decoded: int, frame_count: int | None, fps: float, last_pos_s: float,
                  max_gap_s: float) -> bool:
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
            yield Frame(i, image, i / self.fps if self.fps else float(i))


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
    return CaptureSource(str(path), spec, live=False)


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

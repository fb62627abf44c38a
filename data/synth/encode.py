"""Video writers (registry name -> class) for synthetic videos: H.264 through PyAV, else OpenCV mp4v."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from prodseg.errors import BadInput


class VideoWriter(Protocol):
    def write(self, rgb: np.ndarray) -> None: ...
    def close(self) -> None: ...


class AvH264Writer:
    """H.264 (libx264, yuv420p) in MP4 through PyAV: what OpenCV, PyAV and browsers all decode."""

    def __init__(self, path: Path, width: int, height: int, fps: int):
        import av

        # faststart: the index goes first, so players and streaming readers can start without seeking.
        self._container = av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"})
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        # A keyframe every second keeps frame seeks (VideoFrameDataset) cheap; one thread keeps output stable.
        self._stream.options = {"crf": "20", "preset": "veryfast", "g": str(fps), "threads": "1"}

    def write(self, rgb: np.ndarray) -> None:
        import av

        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class CvMp4vWriter:
    """MPEG-4 part 2 through OpenCV: the fallback when PyAV or libx264 is missing."""

    def __init__(self, path: Path, width: int, height: int, fps: int):
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
        if not self._writer.isOpened():
            raise BadInput(f"{path}: OpenCV cannot open an mp4v writer; pip install 'prodseg[av]' for H.264")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()


def _has_libx264() -> bool:
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:  # noqa: BLE001 - no PyAV, or a PyAV built without libx264
        return False


WRITERS: dict[str, type] = {"h264": AvH264Writer, "mp4v": CvMp4vWriter}
AVAILABLE = {"h264": _has_libx264, "mp4v": lambda: True}


def best_codec() -> str:
    """The first available writer in order of preference."""
    return next(name for name in WRITERS if AVAILABLE[name]())


def open_writer(path: Path, width: int, height: int, fps: int, codec: str | None = None) -> VideoWriter:
    """Open a writer for an RGB frame stream; `codec` None picks the best available."""
    name = codec or best_codec()
    if name not in WRITERS:
        raise BadInput(f"codec '{name}': choose one of {', '.join(WRITERS)}")
    return WRITERS[name](path, width, height, fps)

"""Frame -> model input: resize or letterbox (ultralytics' rounding), normalise, NCHW float, one pass each."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from prodseg.errors import BadInput
from prodseg.runtime.types import FrameContext

PAD_VALUE = 114  # ultralytics' letterbox grey


def _resize_geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> FrameContext:
    (h, w), (ih, iw) = frame_hw, input_hw
    return FrameContext((h, w), (ih, iw), (ih / h, iw / w), (0, 0), (ih, iw))


def _letterbox_geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> FrameContext:
    (h, w), (ih, iw) = frame_hw, input_hw
    r = min(ih / h, iw / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    top, left = round((ih - nh) / 2 - 0.1), round((iw - nw) / 2 - 0.1)
    return FrameContext((h, w), (ih, iw), (r, r), (top, left), (nh, nw))


GEOMETRY: dict[str, Callable[[tuple[int, int], tuple[int, int]], FrameContext]] = {
    "resize": _resize_geometry,
    "letterbox": _letterbox_geometry,
}


def geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int], mode: str) -> FrameContext:
    """Where the frame lands inside the model input."""
    if mode not in GEOMETRY:
        raise BadInput(f"metadata: resize '{mode}' is not one of {', '.join(GEOMETRY)}")
    return GEOMETRY[mode](frame_hw, input_hw)


def fit(image: np.ndarray, ctx: FrameContext) -> np.ndarray:
    """Resize the frame straight into the input canvas; letterbox padding filled with 114."""
    nh, nw = ctx.content
    if ctx.content == ctx.input_size:
        if image.shape[:2] == (nh, nw):
            return image
        return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = ctx.pad
    canvas = np.full((*ctx.input_size, 3), PAD_VALUE, np.uint8)
    inner = canvas[top : top + nh, left : left + nw]
    if image.shape[:2] == (nh, nw):
        inner[...] = image
    else:
        cv2.resize(image, (nw, nh), dst=inner, interpolation=cv2.INTER_LINEAR)
    return canvas


def normalize_lut(mean: list[float], std: list[float]) -> np.ndarray:
    """(3, 256) float32 table: value v of RGB channel c -> (v/255 - mean[c]) / std[c]."""
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.stack([(v - m) / s for m, s in zip(mean, std, strict=False)]).astype(np.float32)


def to_nchw(
    canvas: np.ndarray, lut: np.ndarray, bgr: bool, dtype: type = np.float32, out: np.ndarray | None = None
) -> np.ndarray:
    """HWC uint8 -> (1, 3, H, W) normalised, channel swap included: one table lookup per channel."""
    h, w = canvas.shape[:2]
    if out is None:
        out = np.empty((1, 3, h, w), dtype)
    for c in range(3):
        src = 2 - c if bgr else c
        np.take(lut[c].astype(dtype, copy=False), canvas[:, :, src], out=out[0, c])
    return out


def check_image(image: np.ndarray) -> None:
    """BadInput unless image is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise BadInput(f"predict: expected an (H, W, 3) uint8 image, got {got}")

"""Results of one frame: a label map at the frame's resolution, instances, per-stage timings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Detection:
    """One instance: box xyxy in frame pixels, score, semantic class id (background 0), bool mask or None.

    `mask` is the full-frame (H, W) bool mask, built on first access from `window` (x0, y0, x1, y1)
    and `window_mask`: post-processing keeps only the box's pixels (100 full 720p masks are 92 MB).
    `window_fn`, when given, computes (window, window_mask) on first access instead: YOLO-seg masks at
    the frame's full resolution cost nothing until a sink or an evaluator reads them.
    """

    __slots__ = ("box", "score", "class_id", "_window", "_window_mask", "_window_fn", "frame_size", "_mask")

    def __init__(
        self,
        box: np.ndarray,
        score: float,
        class_id: int,
        mask: np.ndarray | None = None,
        window: tuple[int, int, int, int] | None = None,
        window_mask: np.ndarray | None = None,
        frame_size: tuple[int, int] | None = None,
        window_fn: Callable[[], tuple[tuple[int, int, int, int], np.ndarray]] | None = None,
    ):
        self.box, self.score, self.class_id, self._mask = box, score, class_id, mask
        self._window, self._window_mask, self.frame_size = window, window_mask, frame_size
        self._window_fn = window_fn

    def _resolve(self) -> None:
        if self._window_fn is not None:
            self._window, self._window_mask = self._window_fn()
            self._window_fn = None

    @property
    def window(self) -> tuple[int, int, int, int] | None:
        self._resolve()
        return self._window

    @property
    def window_mask(self) -> np.ndarray | None:
        self._resolve()
        return self._window_mask

    @property
    def mask(self) -> np.ndarray | None:
        if self._mask is None and self.window_mask is not None and self.window and self.frame_size:
            x0, y0, x1, y1 = self.window
            self._mask = np.zeros(self.frame_size, bool)
            self._mask[y0:y1, x0:x1] = self.window_mask
        return self._mask

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(self.score, 4),
            "class_id": self.class_id,
        }

    def __repr__(self) -> str:
        return f"Detection(box={self.to_json()['box']}, score={self.score:.4f}, class_id={self.class_id})"


@dataclass
class Prediction:
    """label_map uint8 (H, W) at the frame's size; instances; timings in ms per stage."""

    label_map: np.ndarray
    instances: list[Detection] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class FrameContext:
    """How a frame was mapped onto the model input, to map outputs back: x_in = x_frame * scale + pad."""

    frame_size: tuple[int, int]  # (H, W)
    input_size: tuple[int, int]  # (H, W)
    scale: tuple[float, float]  # (sy, sx)
    pad: tuple[int, int]  # (top, left)
    content: tuple[int, int]  # resized content (H, W) inside the input

"""Calibration feeds: real images through the runtime's own preprocessing, counted and cache-keyed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from prodseg.data.imageio import read_image

Feed = dict[str, np.ndarray]
Preprocess = Callable[[np.ndarray], Feed]


class CalibrationSet:
    """Images turned into model feeds lazily; `preprocessed` counts how many were actually read."""

    def __init__(self, images: list[Path], preprocess: Preprocess):
        self.images = list(images)
        self.preprocess = preprocess
        self.preprocessed = 0

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Feed]:
        return self.feeds(0, len(self.images))

    def feeds(self, start: int, end: int) -> Iterator[Feed]:
        """Feeds of images[start:end], preprocessed one at a time."""
        for path in self.images[start:end]:
            self.preprocessed += 1
            yield self.preprocess(read_image(path))

    def chunk(self, most: int = 16) -> int:
        """The largest chunk size <= `most` that divides the image count (ORT's strided calibration)."""
        return max(d for d in range(1, min(most, len(self.images)) + 1) if len(self.images) % d == 0)

    def cache_key(self, model_hash: str, method: str, extra: str = "") -> str:
        """Hash of (model, image list with sizes and mtimes, method): a change of any recalibrates."""
        files = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in self.images]
        blob = json.dumps([model_hash, files, method, extra]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def ort_reader(calib: CalibrationSet):  # -> onnxruntime.quantization.CalibrationDataReader
    """An ONNX Runtime CalibrationDataReader over a CalibrationSet (created on first use)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._range = (0, len(calib))
            self._it: Iterator[Feed] | None = None

        def get_next(self) -> Feed | None:
            if self._it is None:
                self._it = calib.feeds(*self._range)
            return next(self._it, None)

        def __len__(self) -> int:
            return len(calib)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._range = (start_index, end_index)
            self._it = None

    return _Reader()

"""Predictor: preprocess -> runner.infer -> postprocess for one artifact, configured by its metadata."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata
from prodseg.runtime import postprocess as post
from prodseg.runtime.preprocess import check_image, fit, geometry, normalize_lut, to_nchw
from prodseg.runtime.runners.base import Runner
from prodseg.runtime.sources import Frame
from prodseg.runtime.types import FrameContext, Prediction


def aspect_size(nominal: tuple[int, int], frame_hw: tuple[int, int], stride: int = 32) -> tuple[int, int]:
    """The input for frames of `frame_hw` at a dynamic model's nominal size: the nominal long side
    (rounded up to the stride) and the frame's aspect on the other side, rounded up to the stride."""
    long_side = math.ceil(max(nominal) / stride) * stride
    h, w = frame_hw
    short = max(stride, math.ceil(long_side * min(h, w) / max(h, w) / stride) * stride)
    return (short, long_side) if w >= h else (long_side, short)


class Predictor:
    """One loaded model: `predict(image)` -> Prediction (label map at frame size, instances, timings ms).

    keep: class ids to keep in the output (None: all). A model with dynamic H/W runs at the metadata's
    input size unless `adapt_to(frame size)` picks the frames' aspect (fixed_size: --input-size was given).
    fuse_preprocess: let the backend take uint8 BGR pixels and normalise inside the model (`fused` says
    whether it could); Python then only letterboxes, and feeds are (1, H, W, 3) uint8.
    """

    def __init__(
        self,
        runner: Runner,
        meta: ArtifactMetadata,
        backend: str,
        keep: frozenset[int] | None = None,
        fixed_size: bool = False,
        fuse_preprocess: bool = True,
    ):
        self.runner, self.meta, self.backend, self.keep = runner, meta, backend, keep
        inputs = runner.input_metadata
        if len(inputs) != 1:
            raise BadInput(f"{runner.path}: expected one image input, the model has {sorted(inputs)}")
        self.input_name, (shape, dtype) = next(iter(inputs.items()))
        self.input_size = (int(meta.input_size[0]), int(meta.input_size[1]))
        self._check_input(shape)
        self.dynamic = not all(isinstance(d, int) and d > 0 for d in shape[2:])
        self.fixed_size = fixed_size
        self.input_dtype = np.float16 if dtype == np.float16 else np.float32
        self._lut = normalize_lut(meta.mean, meta.std).astype(self.input_dtype)
        self._post = post.POSTPROCESS[meta.output_kind]
        self.fused = fuse_preprocess and runner.fuse_preprocess(list(meta.mean), list(meta.std))
        runner.ready()
        self.backend_reason = ""  # why `backend` was chosen (load() fills it in)

    def adapt_to(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """For a dynamic model without --input-size: run frames of this size at their own aspect."""
        if self.dynamic and not self.fixed_size and min(frame_hw) > 0:
            nominal = (int(self.meta.input_size[0]), int(self.meta.input_size[1]))
            self.input_size = aspect_size(nominal, frame_hw, int(self.meta.extra.get("stride", 32) or 32))
        return self.input_size

    @property
    def input_shape(self) -> list[int]:
        """The (N, C, H, W) input this predictor feeds."""
        return [1, 3, *self.input_size]

    def settings(self) -> dict[str, object]:
        """What shapes the results beyond the model: input shape, YOLO-seg thresholds, kept classes."""
        out: dict[str, object] = {"input_shape": self.input_shape}
        if self.meta.output_kind == "yolo_seg":
            out.update(
                conf=self.meta.confidence_threshold, iou=self.meta.iou_threshold, max_det=self.meta.max_det
            )
        out["classes"] = None if self.keep is None else [self.meta.class_names[i] for i in sorted(self.keep)]
        return out

    def _check_input(self, shape: tuple[int | str, ...]) -> None:
        if len(shape) != 4 or shape[1] not in (3, "?") and not isinstance(shape[1], str):
            raise BadInput(
                f"{self.runner.path}: input '{self.input_name}' has shape {shape}; "
                "prodseg models take (N, 3, H, W) images"
            )
        hw = [d for d in shape[2:]]
        if all(isinstance(d, int) and d > 0 for d in hw) and tuple(hw) != self.input_size:
            raise BadInput(
                f"{self.runner.path}: the model takes {hw[0]}x{hw[1]} inputs but its metadata "
                f"says {self.input_size[0]}x{self.input_size[1]}; re-export the artifact"
            )

    def preprocess(self, image: np.ndarray, bgr: bool = False) -> tuple[dict[str, np.ndarray], FrameContext]:
        """(H, W, 3) uint8 RGB (or BGR) -> ({input name: model input}, context to map results back)."""
        check_image(image)
        ctx = geometry(image.shape[:2], self.input_size, self.meta.resize)
        return self._feed(fit(image, ctx), bgr), ctx

    def preprocess_frame(self, frame: Frame) -> tuple[dict[str, np.ndarray], FrameContext]:
        """A decoded BGR frame -> (feed, context); the source scales it to the content size itself
        (PyAV converts YUV at that size), so the full-size BGR image is never made here."""
        ctx = geometry(frame.size_hw, self.input_size, self.meta.resize)
        return self._feed(fit(frame.resized((ctx.content[1], ctx.content[0])), ctx), True), ctx

    def _feed(self, canvas: np.ndarray, bgr: bool) -> dict[str, np.ndarray]:
        """The letterboxed uint8 canvas as the model's input: as is (fused) or normalised NCHW."""
        if self.fused:
            return {self.input_name: (canvas if bgr else canvas[..., ::-1]).reshape(1, *canvas.shape)}
        return {self.input_name: to_nchw(canvas, self._lut, bgr, self.input_dtype)}

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.infer(feed)

    def postprocess(self, outputs: dict[str, np.ndarray], ctx: FrameContext) -> Prediction:
        return self._post(outputs, ctx, self.meta, self.keep)

    def predict(self, image: np.ndarray, bgr: bool = False) -> Prediction:
        """All three stages, with their times in `Prediction.timings` (ms)."""
        return self._timed(lambda: self.preprocess(image, bgr))

    def predict_frame(self, frame: Frame) -> Prediction:
        """predict() for a decoded frame, preprocessed as the pipeline does (`preprocess_frame`)."""
        return self._timed(lambda: self.preprocess_frame(frame))

    def _timed(self, preprocess: Callable[[], tuple[dict[str, np.ndarray], FrameContext]]) -> Prediction:
        t0 = time.perf_counter()
        feed, ctx = preprocess()
        t1 = time.perf_counter()
        outputs = self.infer(feed)
        t2 = time.perf_counter()
        pred = self.postprocess(outputs, ctx)
        t3 = time.perf_counter()
        pred.timings = {
            "preprocess": (t1 - t0) * 1e3,
            "infer": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return pred

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

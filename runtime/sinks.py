"""Sinks: overlay video or images (class colours, legend), label-mask PNGs, JSONL per frame; all atomic."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prodseg.atomic import atomic_path, ensure_writable_dir
from prodseg.data.imageio import write_mask
from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata
from prodseg.runtime.sources import Frame
from prodseg.runtime.types import Detection, Prediction


class _AtomicFile:
    """A temporary file renamed onto `path` by close(ok=True), deleted by close(ok=False)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._cm: Any = atomic_path(self.path)
        self.tmp: Path = self._cm.__enter__()

    def finish(self, ok: bool) -> None:
        if self._cm is None:
            return
        cm, self._cm = self._cm, None
        if ok:
            cm.__exit__(None, None, None)
        else:
            with contextlib.suppress(RuntimeError):
                cm.__exit__(RuntimeError, RuntimeError("aborted"), None)


def color_table(meta: ArtifactMetadata) -> np.ndarray:
    """(256, 3) BGR colour per class id (unknown ids grey)."""
    table = np.full((256, 3), 128, np.uint8)
    for i, (r, g, b) in enumerate(meta.class_colors[:256]):
        table[i] = (b, g, r)
    return table


def draw_legend(image: np.ndarray, names: list[str], colors: np.ndarray) -> None:
    """Class swatches and names in the top-left corner, in place."""
    scale = max(0.35, image.shape[0] / 1400)
    step = int(22 * scale / 0.5)
    for i, name in enumerate(names[1:], start=1):
        y = 4 + (i - 1) * step
        if y + step > image.shape[0]:
            break
        cv2.rectangle(image, (4, y), (4 + step - 4, y + step - 4), tuple(int(c) for c in colors[i]), -1)
        cv2.putText(
            image,
            name,
            (step + 4, y + step - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def render_overlay(
    frame: np.ndarray, pred: Prediction, meta: ArtifactMetadata, colors: np.ndarray, alpha: float = 0.45
) -> np.ndarray:
    """Frame (BGR) with the label map blended in class colours, instance boxes and a legend."""
    color = colors[pred.label_map]
    out = cv2.addWeighted(frame, 1.0 - alpha, color, alpha, 0.0)
    background = pred.label_map == 0
    out[background] = frame[background]
    for det in pred.instances:
        x0, y0, x1, y1 = (int(round(v)) for v in det.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), tuple(int(c) for c in colors[det.class_id]), 1)
    draw_legend(out, meta.class_names, colors)
    return out


class OverlayVideoSink:
    """An MP4 (mp4v) of the frames with the prediction drawn over them."""

    def __init__(self, path: str | Path, meta: ArtifactMetadata, fps: float):
        self.path, self.meta, self.fps = Path(path), meta, fps if fps > 0 else 30.0
        self._colors = color_table(meta)
        self._file: _AtomicFile | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, pred: Prediction) -> None:
        if self._writer is None:
            h, w = frame.image.shape[:2]
            self._file = _AtomicFile(self.path)
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self._file.tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise BadInput(f"{self.path}: OpenCV cannot write an mp4v video here")
        self._writer.write(render_overlay(frame.image, pred, self.meta, self._colors))

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._file is not None:
            self._file.finish(ok)


def frame_file(frame: Frame) -> str:
    """`<image stem>.png` for an image-folder input (outputs pair with the inputs), else `<index:06d>.png`."""
    return f"{frame.name}.png" if frame.name else f"{frame.index:06d}.png"


class OverlayImageSink:
    """One overlay PNG per input image (`<dir>/<stem>.png`): image folders mix sizes, which a video cannot."""

    def __init__(self, folder: str | Path, meta: ArtifactMetadata):
        self.folder, self.meta = ensure_writable_dir(folder), meta
        self._colors = color_table(meta)

    def write(self, frame: Frame, pred: Prediction) -> None:
        from prodseg.data.imageio import write_image

        overlay = render_overlay(frame.image, pred, self.meta, self._colors)
        write_image(self.folder / frame_file(frame), overlay[..., ::-1])  # write_image takes RGB

    def close(self, ok: bool = True) -> None:
        """Each PNG is already final (written atomically)."""


class MaskSink:
    """One label-mask PNG per frame (uint8 class ids), named by `frame_file`."""

    def __init__(self, folder: str | Path):
        self.folder = ensure_writable_dir(folder)

    def write(self, frame: Frame, pred: Prediction) -> None:
        write_mask(self.folder / frame_file(frame), pred.label_map)

    def close(self, ok: bool = True) -> None:
        """Each PNG is already final (written atomically)."""


def instance_record(det: Detection, names: list[str]) -> dict[str, Any]:
    """An instance as COCO results write it: box, score, class (id and name) and its mask as RLE."""
    record = {**det.to_json(), "class_name": _name(names, det.class_id)}
    mask = det.mask
    if mask is not None:
        from pycocotools import mask as coco_mask

        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        record["segmentation"] = {
            "size": [int(v) for v in rle["size"]],
            "counts": rle["counts"].decode("ascii"),
        }
    return record


def _name(names: list[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class_{class_id}"


def frame_record(frame: Frame, pred: Prediction, names: list[str]) -> dict[str, Any]:
    """The JSON line of one frame: index (and image), time, timings, instances, pixels per class name."""
    counts = np.bincount(pred.label_map.ravel(), minlength=1)
    record: dict[str, Any] = {"frame": frame.index}
    if frame.name:
        record["image"] = frame.name
    return {
        **record,
        "timestamp_s": round(frame.timestamp_s, 4),
        "timings_ms": {k: round(v, 3) for k, v in pred.timings.items()},
        "instances": [instance_record(d, names) for d in pred.instances],
        "class_pixels": {_name(names, i): int(c) for i, c in enumerate(counts) if c},
    }


class JsonlSink:
    """predictions.jsonl: one JSON object per frame, classes by the model's names."""

    def __init__(self, path: str | Path, meta: ArtifactMetadata):
        self._names = list(meta.class_names)
        self._file = _AtomicFile(Path(path))
        self._fh = self._file.tmp.open("w", encoding="utf-8")

    def write(self, frame: Frame, pred: Prediction) -> None:
        self._fh.write(json.dumps(frame_record(frame, pred, self._names)) + "\n")

    def close(self, ok: bool = True) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._file.finish(ok)

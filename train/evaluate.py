"""Score any predictor on a dataset split at the masks' own resolution: checkpoints, artifacts, saved PNGs.

A predictor is a callable `(stem, rgb HxWx3 uint8) -> label map HxW`. They are built by a small registry
keyed by what `--model` names: `.pt`/`.pth` -> a torch checkpoint; any other file -> an exported
artifact through `prodseg.runtime.load`; `--predictions DIR` -> saved label PNGs. Instance models
(YOLOv8-seg checkpoints and artifacts) also have `instance_output = True` and `with_instances(stem,
image) -> (label map, instances)`, from one forward pass, for mask mAP against `instances.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from prodseg.data.imageio import read_image, read_mask
from prodseg.data.layout import ShelfDataset
from prodseg.errors import BadInput

log = logging.getLogger("prodseg.eval")

Predictor = Callable[[str, np.ndarray], np.ndarray]
# Predicted instances at the image's resolution: {"class_id": int, "score": float, "mask": bool (H, W)}.
Instances = list[dict[str, Any]]


@dataclass
class EvalResult:
    """Metrics (as ConfusionMatrix.compute returns them), the confusion matrix and a few sample triples."""

    metrics: dict[str, Any]
    confusion: np.ndarray
    class_names: list[str]
    class_colors: list[list[int]]
    samples: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


def resize_to(
    image: np.ndarray, size: tuple[int, int], mode: str
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize (or letterbox) RGB to (H,W); returns the image and the (top, left, h, w) content box."""
    h, w = image.shape[:2]
    th, tw = size
    if mode != "letterbox":
        return cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR), (0, 0, th, tw)
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (th - nh) // 2, (tw - nw) // 2
    canvas = np.full((th, tw, 3), 114, np.uint8)
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, (top, left, nh, nw)


class CheckpointPredictor:
    """A prodseg-train checkpoint run in PyTorch at its training size; labels mapped back to image size."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from prodseg.train.checkpoint import model_from_checkpoint

        self.model, self.cfg, ckpt = model_from_checkpoint(path, device)
        self.device = torch.device(device)
        self.size = tuple(self.cfg.data.image_size)
        self.class_names = list(ckpt["class_names"])
        self.class_colors = [list(c) for c in ckpt["class_colors"]]
        self.instance_output = bool(getattr(self.model, "needs_instances", False))

    @torch.inference_mode()
    def _forward(self, image: np.ndarray) -> tuple[Any, tuple[int, int, int, int]]:
        """Model outputs for one image at the training size, and the content box inside that input."""
        m = self.model
        resized, box = resize_to(image, self.size, getattr(m, "resize", "resize"))
        x = (resized.astype(np.float32) / 255.0 - np.asarray(m.mean, np.float32)) / np.asarray(
            m.std, np.float32
        )
        return m(torch.from_numpy(x.transpose(2, 0, 1)).unsqueeze(0).to(self.device)), box

    @staticmethod
    def _to_image(plane: np.ndarray, box: tuple[int, int, int, int], image: np.ndarray) -> np.ndarray:
        """A uint8 plane at the model's input size -> the image's size (content box only, nearest)."""
        top, left, h, w = box
        crop = np.ascontiguousarray(plane[top : top + h, left : left + w])
        return cv2.resize(crop, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)

    @torch.inference_mode()
    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        outputs, box = self._forward(image)
        labels = self.model.predict_semantic(outputs, self.size)[0].cpu().numpy().astype(np.uint8)
        return self._to_image(labels, box, image)

    @torch.inference_mode()
    def with_instances(self, stem: str, image: np.ndarray) -> tuple[np.ndarray, Instances]:
        """Label map and instances (masks at the image's size) from one forward pass."""
        outputs, box = self._forward(image)
        labels = self.model.predict_semantic(outputs, self.size)[0].cpu().numpy().astype(np.uint8)
        found = [
            {"class_id": d["class_id"], "score": d["score"],
             "mask": self._to_image(np.asarray(d["mask"], np.uint8), box, image).astype(bool)}
            for d in self.model.predict_instances(outputs, self.size)[0]
        ]
        return self._to_image(labels, box, image), found


class ArtifactPredictor:
    """An exported artifact (ONNX, OpenVINO IR, TensorRT engine) through the torch-free runtime."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from prodseg.runtime import load  # written by the runtime stage; BadInput if the format is unknown

        self.runner = load(path)
        meta = self.runner.meta  # ArtifactMetadata: class names and colours travel with the artifact
        self.class_names = list(meta.class_names) if meta else None
        self.class_colors = [list(c) for c in meta.class_colors] if meta else None
        self.instance_output = bool(meta and meta.output_kind == "yolo_seg")

    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.predict(image).label_map)

    def with_instances(self, stem: str, image: np.ndarray) -> tuple[np.ndarray, Instances]:
        """The runtime's label map and decoded instances (full-frame masks) for one image."""
        pred = self.runner.predict(image)
        found = [{"class_id": d.class_id, "score": d.score, "mask": d.mask} for d in pred.instances]
        return np.asarray(pred.label_map), found


class SavedMasksPredictor:
    """Label PNGs saved by another tool: `<dir>/<stem>.png`, one class index per pixel."""

    class_names = None
    class_colors = None

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise BadInput(
                f"{self.folder}: predictions folder not found; pass a folder of <stem>.png label maps"
            )

    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        path = self.folder / f"{stem}.png"
        if not path.is_file():
            raise BadInput(
                f"{path}: no prediction for image '{stem}'; save one <stem>.png per image of the split"
            )
        labels = read_mask(path)
        if labels.shape != image.shape[:2]:
            raise BadInput(
                f"{path}: prediction is {labels.shape[1]}x{labels.shape[0]} but the image is "
                f"{image.shape[1]}x{image.shape[0]}; save label maps at the image size"
            )
        return labels


PREDICTORS: dict[str, Callable[..., Any]] = {".pt": CheckpointPredictor, ".pth": CheckpointPredictor}


def load_predictor(
    model: str | Path | None = None, predictions: str | Path | None = None, device: str = "cpu"
) -> Any:
    """The predictor for `--model PATH` (by extension) or `--predictions DIR`."""
    if (model is None) == (predictions is None):
        raise BadInput("pass exactly one of --model CHECKPOINT_OR_ARTIFACT and --predictions MASK_DIR")
    if predictions is not None:
        return SavedMasksPredictor(predictions, device)
    path = Path(model)
    if not path.exists():
        raise BadInput(f"{path}: model not found; pass a best.pt from prodseg-train or an exported artifact")
    return PREDICTORS.get(path.suffix.lower(), ArtifactPredictor)(path, device)


def evaluate_split(
    predictor: Predictor,
    data: str | Path,
    split: str = "val",
    samples: int = 4,
    num_classes: int | None = None,
) -> EvalResult:
    """Run `predictor` over every image of the split and accumulate a confusion matrix against its masks."""
    from prodseg.data.torch_datasets import checked_split
    from prodseg.train.metrics import ConfusionMatrix

    dataset = ShelfDataset(data)
    names = list(dataset.classes.names)
    n = num_classes or len(names)
    cm = ConfusionMatrix(n)
    kept: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    items = checked_split(dataset, split)  # the masks' labels and sizes, before any prediction
    mask_map = instance_scorer(predictor, dataset, n)
    for sample in items:
        image, target = read_image(sample.image), read_mask(sample.mask)
        if mask_map is None:
            pred = predictor(sample.stem, image)
        else:
            pred, found = predictor.with_instances(sample.stem, image)  # type: ignore[attr-defined]
            mask_map.add(sample.stem, target, found)
        if pred.shape != target.shape:
            raise BadInput(f"{sample.stem}: prediction {pred.shape} does not match its mask {target.shape}")
        try:
            cm.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(target.astype(np.int64)))
        except ValueError as exc:
            raise BadInput(
                f"{sample.stem}: {exc}; do the predictions use {dataset.root / 'classes.yaml'}'s {n} classes?"
            ) from None
        if len(kept) < samples:
            kept[sample.stem] = (image, target, pred)
    metrics = dict(cm.compute())
    if mask_map is not None:
        metrics.update(mask_map.compute())
    return EvalResult(metrics, cm.mat.cpu().numpy(), names, [list(c) for c in dataset.classes.colors], kept)


class DatasetMaskMAP:
    """Mask mAP of predicted instances against the dataset's instances.json (COCOeval via MaskMAP)."""

    def __init__(self, ids: dict[str, np.ndarray], num_classes: int, path: Path) -> None:
        from prodseg.train.instance_metrics import MaskMAP

        self.ids, self.path, self.map = ids, path, MaskMAP(num_classes)

    def add(self, stem: str, semantic: np.ndarray, found: Instances) -> None:
        if stem not in self.ids:
            raise BadInput(f"{self.path}: no annotations for image '{stem}'; regenerate it with prodseg-data "
                           "convert, or move the file away to score semantic metrics only")
        self.map.add(torch.from_numpy(semantic.astype(np.int64)), torch.from_numpy(self.ids[stem]), found)

    def compute(self) -> dict[str, float]:
        return self.map.compute()


def instance_scorer(predictor: Any, dataset: ShelfDataset, num_classes: int) -> DatasetMaskMAP | None:
    """A mask-mAP accumulator when the predictor yields instances and the dataset has instances.json."""
    if not getattr(predictor, "instance_output", False):
        return None
    path = dataset.instances_json
    if not path.is_file():
        log.warning("%s: missing, so no mask mAP (semantic metrics only)", path)
        return None
    from prodseg.data.formats.coco import read_coco
    from prodseg.data.instances import id_map_from_instances

    records, _ = read_coco(path)
    ids = {r.stem: id_map_from_instances(r.instances, (r.height, r.width)).astype(np.int64) for r in records}
    return DatasetMaskMAP(ids, num_classes, path)

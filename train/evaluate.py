"""Score any predictor on a dataset split at the masks' own resolution: checkpoints, artifacts, saved PNGs.

A predictor is a callable `(stem, rgb HxWx3 uint8) -> label map HxW`. They are built by a small registry
keyed by what `--model` names: `.pt`/`.pth` -> a torch checkpoint; any other file -> an exported
artifact through `prodseg.runtime.load`; `--predictions DIR` -> saved label PNGs.
"""

from __future__ import annotations

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

Predictor = Callable[[str, np.ndarray], np.ndarray]


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

    @torch.inference_mode()
    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        m = self.model
        resized, (top, left, h, w) = resize_to(image, self.size, getattr(m, "resize", "resize"))
        x = (resized.astype(np.float32) / 255.0 - np.asarray(m.mean, np.float32)) / np.asarray(
            m.std, np.float32
        )
        x = torch.from_numpy(x.transpose(2, 0, 1)).unsqueeze(0).to(self.device)
        labels = m.predict_semantic(m(x), self.size)[0].cpu().numpy().astype(np.uint8)
        labels = labels[top : top + h, left : left + w]
        return cv2.resize(labels, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


class ArtifactPredictor:
    """An exported artifact (ONNX, OpenVINO IR, TensorRT engine) through the torch-free runtime."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from prodseg.runtime import load  # written by the runtime stage; BadInput if the format is unknown

        self.runner = load(path)
        meta = self.runner.meta  # ArtifactMetadata: class names and colours travel with the artifact
        self.class_names = list(meta.class_names) if meta else None
        self.class_colors = [list(c) for c in meta.class_colors] if meta else None

    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.predict(image).label_map)


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
    from prodseg.train.metrics import ConfusionMatrix

    dataset = ShelfDataset(data)
    names = list(dataset.classes.names)
    n = num_classes or len(names)
    cm = ConfusionMatrix(n)
    kept: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    items = dataset.split(split)
    if not items:
        raise BadInput(f"{dataset.root}: split '{split}' is empty; list stems in splits/{split}.txt")
    for sample in items:
        image, target = read_image(sample.image), read_mask(sample.mask)
        pred = predictor(sample.stem, image)
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
    return EvalResult(
        dict(cm.compute()), cm.mat.cpu().numpy(), names, [list(c) for c in dataset.classes.colors], kept
    )

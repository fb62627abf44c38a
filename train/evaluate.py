"""Score any predictor on a dataset split at the masks' own resolution: checkpoints, artifacts, saved PNGs.

A predictor is a callable `(stem, rgb HxWx3 uint8) -> label map HxW`: `--model PATH` -> any model through
`prodseg.runtime.load` (a checkpoint through its torch runner, so every model is scored one way);
`--predictions DIR` -> saved label PNGs. Instance models (YOLOv8-seg checkpoints and artifacts) also
have `instance_output = True` and `with_instances(stem, image) -> (label map, instances)`, from one
forward pass, for mask mAP against `instances.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prodseg.data.imageio import read_image, read_mask
from prodseg.data.layout import ShelfDataset
from prodseg.errors import BadInput
from prodseg.metrics import ConfusionMatrix

log = logging.getLogger("prodseg.eval")

Predictor = Callable[[str, np.ndarray], np.ndarray]
# Predicted instances at the image's resolution: {"class_id": int, "score": float, "mask": bool (H, W)}.
Instances = list[dict[str, Any]]


@dataclass
class EvalResult:
    """Metrics (prodseg.metrics scores as a dict), the confusion matrix and a few sample triples."""

    metrics: dict[str, Any]
    confusion: np.ndarray
    class_names: list[str]
    class_colors: list[list[int]]
    samples: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


class ModelPredictor:
    """Any model prodseg runs (checkpoint, ONNX, OpenVINO IR, TensorRT engine) through `prodseg.runtime`.

    A checkpoint goes through the runtime's torch runner, so eval scores it exactly as predict and bench
    run it, with the same preprocessing and postprocessing as its exported artifacts.
    """

    def __init__(self, path: str | Path, device: str = "cpu", **runtime_opts: Any) -> None:
        from prodseg.runtime import load

        self.runner = load(path, device=device, **runtime_opts)
        meta = self.runner.meta  # class names and colours travel with the model
        self.class_names = list(meta.class_names)
        self.class_colors = [list(c) for c in meta.class_colors]
        self.instance_output = meta.output_kind == "yolo_seg"

    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.predict(image).label_map)

    def with_instances(self, stem: str, image: np.ndarray) -> tuple[np.ndarray, Instances]:
        """The label map and decoded instances (full-frame masks) of one forward pass."""
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


def load_predictor(
    model: str | Path | None = None, predictions: str | Path | None = None, device: str = "cpu",
    **runtime_opts: Any,
) -> Any:
    """The predictor for `--model PATH` (any model the runtime loads) or `--predictions DIR`."""
    if (model is None) == (predictions is None):
        raise BadInput("pass exactly one of --model CHECKPOINT_OR_ARTIFACT and --predictions MASK_DIR")
    if predictions is not None:
        return SavedMasksPredictor(predictions, device)
    path = Path(str(model))
    if not path.exists():
        raise BadInput(f"{path}: model not found; pass a best.pt from prodseg-train or an exported artifact")
    return ModelPredictor(path, device, **runtime_opts)


def evaluate_split(
    predictor: Predictor,
    data: str | Path,
    split: str = "val",
    samples: int = 4,
    num_classes: int | None = None,
) -> EvalResult:
    """Run `predictor` over every image of the split and accumulate a confusion matrix against its masks."""
    from prodseg.data.torch_datasets import checked_split

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
        cm.update(target, pred, where=f"image '{sample.stem}'")
        if len(kept) < samples:
            kept[sample.stem] = (image, target, pred)
    metrics = cm.scores().as_dict()
    if mask_map is not None:
        metrics.update(mask_map.compute())
    return EvalResult(metrics, cm.mat, names, [list(c) for c in dataset.classes.colors], kept)


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

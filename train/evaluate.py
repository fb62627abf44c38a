"""Score any predictor on a dataset split at the masks' own resolution: checkpoints, artifacts, saved PNGs.

A predictor is a callable `(stem, rgb HxWx3 uint8) -> label map HxW`: `--model PATH` -> any model through
`prodseg.runtime.load` (a checkpoint through its torch runner, so every model is scored one way);
`--predictions DIR` -> saved label PNGs. Instance models (YOLOv8-seg checkpoints and artifacts) also
have `instance_output = True` and `with_instances(stem, image) -> (label map, instances)`, from one
forward pass, for mask mAP against `instances.json`: the label map at the model's deployed confidence
threshold, the instances down to confidence 0.001 (max 300 per image) for the standard mAP, of which
those above the deployed threshold give the `_at_conf` mAP.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.classes import ClassMatch, match_classes
from prodseg.data.imageio import read_image, read_mask
from prodseg.data.layout import ShelfDataset
from prodseg.data.taxonomy import IGNORE_INDEX, default_colors
from prodseg.errors import BadInput
from prodseg.metrics import MAP_CONFIDENCE, MAX_DET, ConfusionMatrix

log = logging.getLogger("prodseg.eval")

# What eval scores: (stem, rgb HxWx3 uint8) -> label map HxW.
LabelMapFn = Callable[[str, np.ndarray], np.ndarray]
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


class ModelLabelMaps:
    """Any model prodseg runs (checkpoint, ONNX, OpenVINO IR, TensorRT engine) through `prodseg.runtime`.

    A checkpoint goes through the runtime's torch runner, so eval scores it exactly as predict and bench
    run it, with the same preprocessing and postprocessing as its exported artifacts.
    """

    def __init__(self, path: str | Path, device: str = "cpu", **runtime_opts: Any) -> None:
        from prodseg.runtime import load

        self.runner = load(path, device=device, **runtime_opts)
        self.source = Path(path)
        meta = self.runner.meta  # class names and colours travel with the model
        self.class_names = list(meta.class_names)
        self.class_colors = [list(c) for c in meta.class_colors]
        self.instance_output = meta.output_kind == "yolo_seg"
        self.confidence_threshold = float(meta.confidence_threshold)
        # The same postprocessing with mAP's thresholds: every detection down to 0.001, at most 300.
        self.scoring_meta = dataclasses.replace(meta, confidence_threshold=MAP_CONFIDENCE, max_det=MAX_DET)

    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.predict(image).label_map)

    def with_instances(self, stem: str, image: np.ndarray) -> tuple[np.ndarray, Instances]:
        """The label map (deployed threshold) and the instances down to MAP_CONFIDENCE (full-frame masks)
        of one forward pass."""
        from prodseg.runtime.postprocess import POSTPROCESS

        feed, ctx = self.runner.preprocess(image)
        outputs = self.runner.infer(feed)
        label_map = self.runner.postprocess(outputs, ctx).label_map
        scored = POSTPROCESS[self.scoring_meta.output_kind](outputs, ctx, self.scoring_meta)
        found = [{"class_id": d.class_id, "score": d.score, "mask": d.mask} for d in scored.instances]
        return np.asarray(label_map), found


class SavedLabelMaps:
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


def load_label_maps(
    model: str | Path | None = None,
    predictions: str | Path | None = None,
    device: str = "cpu",
    **runtime_opts: Any,
) -> Any:
    """The predictor for `--model PATH` (any model the runtime loads) or `--predictions DIR`."""
    if (model is None) == (predictions is None):
        raise BadInput("pass exactly one of --model CHECKPOINT_OR_ARTIFACT and --predictions MASK_DIR")
    if predictions is not None:
        return SavedLabelMaps(predictions, device)
    path = Path(str(model))
    if not path.exists():
        raise BadInput(f"{path}: model not found; pass a best.pt from prodseg-train or an exported artifact")
    return ModelLabelMaps(path, device, **runtime_opts)


@dataclass
class Item:
    """One image to score: its stem, the image file (None: a plain folder of masks) and its mask."""

    stem: str
    image: Path | None
    mask: Path


def evaluate_split(
    predictor: LabelMapFn,
    data: str | Path,
    split: str = "val",
    samples: int = 4,
    class_map: dict[str, str] | None = None,
) -> EvalResult:
    """Run `predictor` over every image of the split and score it against the masks."""
    from prodseg.data.check import checked_split

    dataset = ShelfDataset(data)
    # checked up front: every sample of the split has its mask
    items = [Item(s.stem, s.image, s.mask) for s in checked_split(dataset, split) if s.mask is not None]
    return score(
        predictor,
        items,
        list(dataset.classes.names),
        [list(c) for c in dataset.classes.colors],
        dataset.root / "classes.yaml",
        samples,
        class_map,
        dataset_mask_map(predictor, dataset, dataset.classes.num_classes),
    )


def evaluate_folders(
    predictions: str | Path,
    truth: str | Path,
    classes: str | Path | None = None,
    samples: int = 4,
    class_map: dict[str, str] | None = None,
) -> EvalResult:
    """Score a folder of predicted label PNGs against a folder of ground-truth PNGs, paired by stem.

    The classes come from `classes` (a classes.yaml), else the truth folder's classes.yaml; without
    either, the labels are numbered class_0, class_1, ... up to the largest label found.
    """
    truth = Path(truth)
    if not truth.is_dir():
        raise BadInput(f"{truth}: ground-truth folder not found; pass a folder of <stem>.png label maps")
    items = [Item(p.stem, None, p) for p in sorted(truth.glob("*.png"))]
    if not items:
        raise BadInput(f"{truth}: no <stem>.png label maps in the ground-truth folder")
    source = Path(classes) if classes is not None else truth / "classes.yaml"
    if source.is_file() or classes is not None:
        from prodseg.data.taxonomy import ClassList

        class_list = ClassList.load(source)
        names, colors = list(class_list.names), [list(c) for c in class_list.colors]
    else:
        names = _numbered_classes(predictions, items)
        colors = [list(c) for c in default_colors(len(names))]
    return score(SavedLabelMaps(predictions), items, names, colors, source, samples, class_map, None)


def _numbered_classes(predictions: str | Path, items: list[Item]) -> list[str]:
    top = 0
    for item in items:
        for path in (item.mask, Path(predictions) / item.mask.name):
            if path.is_file():
                labels = read_mask(path)
                kept = labels[labels != IGNORE_INDEX]
                top = max(top, int(kept.max()) if kept.size else 0)
    return [f"class_{i}" for i in range(top + 1)]


def score(
    predictor: Any,
    items: list[Item],
    names: list[str],
    colors: list[list[int]],
    data_source: Path,
    samples: int,
    class_map: dict[str, str] | None,
    mask_map: DatasetMaskMAP | None,
) -> EvalResult:
    """The confusion matrix (and mask mAP) of `predictor` over `items`, in the data's class numbering."""
    match = _class_match(predictor, names, data_source, class_map)
    cm = ConfusionMatrix(len(names))
    kept: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for item in items:
        target = read_mask(item.mask)
        image = read_image(item.image) if item.image else np.full((*target.shape, 3), 128, np.uint8)
        if mask_map is None:
            pred = predictor(item.stem, image)
        else:
            pred, found = predictor.with_instances(item.stem, image)
            if match.lut is not None:
                found = [{**d, "class_id": int(match.lut[d["class_id"]])} for d in found]
            mask_map.add(item.stem, target, found)
        if pred.shape != target.shape:
            raise BadInput(f"{item.stem}: prediction {pred.shape} does not match its mask {target.shape}")
        pred = match.apply(pred)
        cm.update(target, pred, where=f"image '{item.stem}'")
        if len(kept) < samples:
            kept[item.stem] = (image, target, pred)
    metrics = cm.scores().as_dict()
    if mask_map is not None:
        metrics.update(mask_map.compute())
    return EvalResult(metrics, cm.mat, names, colors, kept)


def _class_match(
    predictor: Any, names: list[str], data_source: Path, class_map: dict[str, str] | None
) -> ClassMatch:
    """Model classes against the data's by name; saved PNGs (no names) are read in the data's numbering."""
    model_names = getattr(predictor, "class_names", None)
    if model_names is None:
        return ClassMatch(None)
    match = match_classes(
        model_names, names, str(getattr(predictor, "source", "the model")), str(data_source), class_map
    )
    if match.note:
        log.info("%s", match.note)
    return match


class DatasetMaskMAP:
    """Mask mAP of predicted instances against the dataset's instances.json (COCOeval via MaskMAP)."""

    def __init__(
        self, ids: dict[str, np.ndarray], num_classes: int, path: Path, threshold: float | None
    ) -> None:
        from prodseg.train.instance_metrics import StandardAndDeployedMAP

        self.ids, self.path, self.map = ids, path, StandardAndDeployedMAP(num_classes, threshold)

    def add(self, stem: str, semantic: np.ndarray, found: Instances) -> None:
        if stem not in self.ids:
            raise BadInput(
                f"{self.path}: no annotations for image '{stem}'; regenerate it with prodseg-data "
                "convert, or move the file away to score semantic metrics only"
            )
        import torch  # mask mAP only: scoring label maps needs no torch (an edge box runs prodseg-eval)

        self.map.add(torch.from_numpy(semantic.astype(np.int64)), torch.from_numpy(self.ids[stem]), found)

    def compute(self) -> dict[str, float]:
        return self.map.compute()


def dataset_mask_map(predictor: Any, dataset: ShelfDataset, num_classes: int) -> DatasetMaskMAP | None:
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
    # a deployed threshold gives the *_at_conf row too (saved instances from elsewhere have none)
    return DatasetMaskMAP(ids, num_classes, path, getattr(predictor, "confidence_threshold", None))

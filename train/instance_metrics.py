"""Mask mAP50 and mAP50-95 via pycocotools' COCOeval (iouType "segm") against instance-id maps.

Scored the standard way (COCO, ultralytics val): every detection down to confidence 0.001, at most 300
per image (`map50`, `map50_95`); and again on the detections a deployed model keeps, those above its
confidence_threshold (`map50_at_conf`, `map50_95_at_conf`). NMS is greedy by score, so the deployed
detections are exactly the low-threshold ones above the threshold: one prediction pass serves both.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from prodseg.metrics import MAP_CONFIDENCE, MAX_DET
from prodseg.train.models.yolo_targets import instance_table


def _rle(binary: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def ground_truth_annotations(
    image_id: int, semantic: torch.Tensor, instances: torch.Tensor, num_classes: int, start_id: int
) -> list[dict[str, Any]]:
    """COCO annotations (RLE) for one image's instance-id map; category = majority semantic class."""
    ids, classes, boxes = instance_table(semantic.cpu(), instances.cpu(), num_classes)
    inst = instances.cpu().numpy()
    anns = []
    for k, (inst_id, cls, box) in enumerate(zip(ids.tolist(), classes.tolist(), boxes.tolist(), strict=True)):
        binary = inst == inst_id
        x1, y1, x2, y2 = box
        anns.append(
            {
                "id": start_id + k,
                "image_id": image_id,
                "category_id": cls,
                "iscrowd": 0,
                "segmentation": _rle(binary),
                "area": float(binary.sum()),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }
        )
    return anns


def coco_mask_map(
    gt: COCO, results: list[dict[str, Any]], image_ids: list[int] | None = None
) -> dict[str, float]:
    """{'map50', 'map50_95'} of `results` against `gt` (COCOeval segm), up to MAX_DET detections per image.

    Read from COCOeval's precision table at its largest maxDets: `summarize()` reads mAP50-95 at a fixed
    100 (stats[0]), which is no entry once maxDets is [1, 10, 300].
    """
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ev = COCOeval(gt, gt.loadRes(results), iouType="segm")
        ev.params.maxDets = [1, 10, MAX_DET]
        if image_ids is not None:
            ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (iou thresholds, recall, class) at area all, 300
    return {"map50": _mean_valid(precision[0]), "map50_95": _mean_valid(precision)}


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]  # -1: a class without ground truth
    return float(valid.mean()) if valid.size else 0.0


class MaskMAP:
    """Accumulates ground truth and predicted instances image by image, then runs COCOeval once."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes  # semantic classes incl. background; categories are 1..num_classes-1
        self.images: list[dict[str, Any]] = []
        self.gts: list[dict[str, Any]] = []
        self.dts: list[dict[str, Any]] = []

    def add(self, semantic: torch.Tensor, instances: torch.Tensor, predicted: list[dict[str, Any]]) -> None:
        """One image: its (H,W) semantic and instance-id maps and predicted dicts (score, class_id, mask)."""
        image_id = len(self.images) + 1
        h, w = instances.shape[-2:]
        self.images.append({"id": image_id, "height": int(h), "width": int(w)})
        start = len(self.gts) + 1
        self.gts += ground_truth_annotations(image_id, semantic, instances, self.num_classes, start)
        for p in predicted:
            self.dts.append(
                {
                    "image_id": image_id,
                    "category_id": int(p["class_id"]),
                    "score": float(p["score"]),
                    "segmentation": _rle(np.asarray(p["mask"], dtype=bool)),
                }
            )

    def merge_from_all_processes(self) -> None:
        """Under torchrun: take every rank's images (ids renumbered) so COCOeval scores the whole val set."""
        from prodseg.train.distributed import gather

        parts = gather((self.images, self.gts, self.dts))
        if len(parts) == 1:
            return
        self.images, self.gts, self.dts = [], [], []
        for images, gts, dts in parts:
            image_offset, ann_offset = len(self.images), len(self.gts)
            self.images += [{**im, "id": im["id"] + image_offset} for im in images]
            self.gts += [
                {**a, "id": a["id"] + ann_offset, "image_id": a["image_id"] + image_offset} for a in gts
            ]
            self.dts += [{**d, "image_id": d["image_id"] + image_offset} for d in dts]

    def compute(self) -> dict[str, float]:
        """{'map50', 'map50_95'}: NaN without ground-truth instances, 0 without predictions."""
        if not self.gts:
            return {"map50": math.nan, "map50_95": math.nan}
        if not self.dts:
            return {"map50": 0.0, "map50_95": 0.0}
        gt = COCO()
        gt.dataset = {
            "images": self.images,
            "annotations": self.gts,
            "categories": [{"id": c, "name": str(c)} for c in range(1, self.num_classes)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return coco_mask_map(gt, self.dts)


class StandardAndDeployedMAP:
    """Two MaskMAPs over the same images: all predictions given (the standard mAP) and those whose score
    is above the deployed `threshold` (keys suffixed `_at_conf`; none without a threshold)."""

    def __init__(self, num_classes: int, threshold: float | None) -> None:
        self.threshold = threshold
        self.all, self.deployed = MaskMAP(num_classes), MaskMAP(num_classes)

    def add(self, semantic: torch.Tensor, instances: torch.Tensor, predicted: list[dict[str, Any]]) -> None:
        self.all.add(semantic, instances, predicted)
        if self.threshold is None:
            return
        # strictly above, as the NMS confidence filters (ultralytics' and the runtime's) keep them
        self.deployed.add(semantic, instances, [p for p in predicted if p["score"] > self.threshold])

    def merge_from_all_processes(self) -> None:
        self.all.merge_from_all_processes()
        self.deployed.merge_from_all_processes()

    def compute(self) -> dict[str, float]:
        """{'map50', 'map50_95', 'map50_at_conf', 'map50_95_at_conf'}."""
        if self.threshold is None:
            return self.all.compute()
        deployed = {f"{key}_at_conf": value for key, value in self.deployed.compute().items()}
        return {**self.all.compute(), **deployed}


class InstanceScorer:
    """Feeds a YOLO SegModel's predicted instances (down to MAP_CONFIDENCE) and a batch's instance maps
    into a StandardAndDeployedMAP."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.map = StandardAndDeployedMAP(model.num_classes, model.confidence_threshold)

    def update(self, outputs: Any, batch: dict[str, torch.Tensor]) -> None:
        """Add one evaluated batch (outputs of the model's forward on batch['image'])."""
        size = tuple(batch["mask"].shape[-2:])
        predicted = self.model.predict_instances(outputs, size, conf=MAP_CONFIDENCE)
        for i, instances in enumerate(predicted):
            self.map.add(batch["mask"][i], batch["instances"][i], instances)

    def compute(self) -> dict[str, float]:
        """The four mAP keys over everything added (on every rank, under torchrun)."""
        self.map.merge_from_all_processes()
        return self.map.compute()

"""Tiny hand-made datasets for the format tests: a few 64x64 images with known shapes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from prodseg.data.formats.coco import write_coco
from prodseg.data.imageio import write_image, write_mask
from prodseg.data.instances import ImageRecord, Instance, semantic_from_instances
from prodseg.data.layout import write_splits
from prodseg.data.taxonomy import SHELF10

H = W = 64


def rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def disc(cx: int, cy: int, r: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.circle(m, (cx, cy), r, 1, -1)
    return m.astype(bool)


def triangle() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [np.array([[36, 4], [62, 10], [44, 30]], np.int32)], 1)
    return m.astype(bool)


def instances(k: int) -> list[Instance]:
    """A shelf board, a bottle-ish disc, a two-part (occluded) box, a jar triangle, a crowd region."""
    return [
        Instance(1, rect(5, 20, 3, 30)),
        Instance(3, disc(40 + k, 44, 10)),
        Instance(5, rect(30, 50, 4, 14) | rect(30, 50, 20, 26)),
        Instance(7, triangle()),
        Instance(4, rect(56, 62, 36, 60), iscrowd=True),
    ]


def build_dataset(root: Path, n: int = 3, with_instances: bool = True) -> list[ImageRecord]:
    """A prodseg folder with n images (PNG), masks painted from `instances`, splits and instances.json."""
    records = []
    for k in range(n):
        insts = instances(k)
        rgb = np.random.default_rng(k).integers(0, 255, (H, W, 3), dtype=np.uint8)
        write_image(root / "images" / f"img{k}.png", rgb)
        write_mask(root / "masks" / f"img{k}.png", semantic_from_instances(insts, (H, W)))
        records.append(ImageRecord(f"img{k}.png", H, W, insts))
    SHELF10.save(root / "classes.yaml")
    write_splits(root, {"train": [f"img{k}" for k in range(n - 1)], "val": [f"img{n - 1}"]})
    if with_instances:
        write_coco(root / "instances.json", records, SHELF10)
    return records


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))

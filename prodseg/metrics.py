"""The one semantic-segmentation metrics core: a confusion matrix and the scores computed from it.

Torch-free (numpy), so training validation, `prodseg-eval`, export verification and `prodseg-bench` all
count pixels and score them the same way. Conventions:
- rows are the ground truth, columns the prediction;
- a ground-truth pixel equal to IGNORE_INDEX (255) is not counted; a *predicted* 255 is not "ignore" but
  a label outside the classes, which is an error like any other out-of-range label;
- a class absent from both truth and prediction has IoU/Dice NaN and is left out of the means; a class
  present in either one counts (IoU 0 if never matched);
- scores are fractions in [0, 1]; percent exists only where a table renders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prodseg.data.taxonomy import IGNORE_INDEX
from prodseg.errors import BadInput

# Instance masks are scored the standard way (COCO, ultralytics val): every detection down to this
# confidence, at most MAX_DET per image; the deployed threshold gives a second, labelled figure.
MAP_CONFIDENCE = 0.001
MAX_DET = 300


class LabelOutOfRange(BadInput):
    """A label map holds values outside 0..num_classes-1 (and, for the ground truth, 255)."""


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, where: str = "") -> np.ndarray:
    """(num_classes, num_classes) int64 pixel counts of one pair of label maps of the same shape."""
    if gt.shape != pred.shape:
        raise ValueError(f"label maps differ in shape: truth {gt.shape}, prediction {pred.shape}")
    keep = gt != IGNORE_INDEX
    truth, guess = gt[keep].astype(np.int64, copy=False), pred[keep].astype(np.int64, copy=False)
    n = num_classes
    _check_range(truth, n, "ground truth", where)
    _check_range(guess, n, "prediction", where)
    return np.bincount(truth * n + guess, minlength=n * n).reshape(n, n)


def _check_range(labels: np.ndarray, n: int, what: str, where: str) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n):
        bad = np.unique(labels[(labels < 0) | (labels >= n)])
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (" …" if bad.size > 8 else "")
        allowed = f"0..{n - 1}" + (f" or {IGNORE_INDEX} (ignore)" if what == "ground truth" else "")
        raise LabelOutOfRange(
            f"{where + ': ' if where else ''}{what} holds label(s) {shown} outside the "
            f"{n} classes ({allowed}); do model and data have the same classes?"
        )


@dataclass(frozen=True)
class Scores:
    """Per-class IoU and Dice (NaN: class absent), their means, and pixel accuracy; all fractions."""

    iou: list[float]
    dice: list[float]
    miou: float
    mean_dice: float
    pixel_accuracy: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "miou": self.miou,
            "iou": self.iou,
            "mean_dice": self.mean_dice,
            "dice": self.dice,
            "pixel_accuracy": self.pixel_accuracy,
        }


def scores(mat: np.ndarray) -> Scores:
    """The scores of a confusion matrix (rows = truth)."""
    mat = np.asarray(mat, dtype=np.float64)
    tp = np.diag(mat)
    gt, pr = mat.sum(1), mat.sum(0)
    present = (gt + pr) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, tp / np.maximum(gt + pr - tp, 1e-12), np.nan)
        dice = np.where(present, 2 * tp / np.maximum(gt + pr, 1e-12), np.nan)
    total = mat.sum()
    return Scores(
        iou=[float(v) for v in iou],
        dice=[float(v) for v in dice],
        miou=float(iou[present].mean()) if present.any() else math.nan,
        mean_dice=float(dice[present].mean()) if present.any() else math.nan,
        pixel_accuracy=float(tp.sum() / total) if total > 0 else math.nan,
    )


class ConfusionMatrix:
    """Accumulates `confusion_matrix` over many label maps; `scores()` at any point."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.mat = np.zeros((num_classes, num_classes), np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray, where: str = "") -> None:
        """Add one pair (or a batch) of label maps of the same shape."""
        self.mat += confusion_matrix(gt, pred, self.num_classes, where)

    def scores(self) -> Scores:
        return scores(self.mat)

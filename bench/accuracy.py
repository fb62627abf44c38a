"""Video accuracy against per-frame ground-truth masks: mIoU and temporal stability (flicker).

Flicker definition: the fraction of pixels whose predicted label changes between consecutive frames
(the predicted change rate) minus the same fraction in the ground truth (the true change rate),
clamped at 0. Objects that really move change the truth as much as the prediction, so only changes
the truth does not have count. Pixels that are ignore (255) in either ground-truth frame are left out
of both rates. Both raw rates are reported beside the difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prodseg.classes import ClassMatch, match_classes
from prodseg.data.imageio import read_mask
from prodseg.data.taxonomy import IGNORE_INDEX, SHELF10, ClassList
from prodseg.errors import BadInput
from prodseg.metrics import ConfusionMatrix


def change_rate(prev: np.ndarray, cur: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid pixels whose label differs between two frames."""
    n = int(valid.sum())
    return float(((prev != cur) & valid).sum() / n) if n else 0.0


@dataclass
class AccuracyResult:
    """Scores over the frames with ground truth; `iou` per class (NaN: absent from truth and prediction)."""

    frames: int
    miou: float
    pred_change_rate: float
    gt_change_rate: float
    iou: list[float] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)  # the truth's classes, in `iou`'s order

    @property
    def flicker(self) -> float:
        return max(0.0, self.pred_change_rate - self.gt_change_rate)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "miou": _rounded(self.miou),
            "flicker": round(self.flicker, 6),
            "pred_change_rate": round(self.pred_change_rate, 6),
            "gt_change_rate": round(self.gt_change_rate, 6),
            "iou": [_rounded(v) for v in self.iou],
            "classes": list(self.class_names),
        }


def _rounded(value: float) -> float | None:
    """JSON has no NaN: an absent class (or no frame scored) is null."""
    return None if math.isnan(value) else round(value, 6)


class VideoAccuracy:
    """Accumulates the confusion matrix and change rates frame by frame, in frame order."""

    def __init__(
        self, num_classes: int, class_names: list[str] | None = None, classes: ClassMatch | None = None
    ) -> None:
        self.num_classes = num_classes
        self.class_names = class_names or [f"class_{i}" for i in range(num_classes)]
        self.classes = classes or ClassMatch(None)  # model labels -> the truth's labels
        self.cm = ConfusionMatrix(num_classes)
        self.frames = 0
        self._pred_changes: list[float] = []
        self._gt_changes: list[float] = []
        self._prev: tuple[int, np.ndarray, np.ndarray] | None = None

    def update(self, index: int, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one frame; pred is read in the truth's classes and resized (nearest) to its size."""
        pred = self.classes.apply(pred)
        if pred.shape != gt.shape:
            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        self.cm.update(gt, pred, where=f"frame {index}")
        self.frames += 1
        # Only consecutive frames compare: a looped video restarts at index 0.
        if self._prev is not None and index == self._prev[0] + 1:
            _, prev_gt, prev_pred = self._prev
            valid = (gt != IGNORE_INDEX) & (prev_gt != IGNORE_INDEX)
            self._pred_changes.append(change_rate(prev_pred, pred, valid))
            self._gt_changes.append(change_rate(prev_gt, gt, valid))
        self._prev = (index, gt, pred)

    def result(self) -> AccuracyResult:
        pred_rate = float(np.mean(self._pred_changes)) if self._pred_changes else 0.0
        gt_rate = float(np.mean(self._gt_changes)) if self._gt_changes else 0.0
        scores = self.cm.scores()
        return AccuracyResult(self.frames, scores.miou, pred_rate, gt_rate, scores.iou, self.class_names)


class GroundTruth:
    """A folder of per-frame masks named by frame index: 000000.png, 000001.png, ...

    Their classes come from `classes` (a classes.yaml), else the folder's own classes.yaml; without
    either, the masks are taken to use the default shelf10 taxonomy, which only a shelf10 model may
    assume (see `match`).
    """

    def __init__(self, folder: str | Path, classes: str | Path | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise BadInput(
                f"--gt-masks {self.folder}: not a folder; give the folder of per-frame masks "
                "(000000.png, 000001.png, ...)"
            )
        self.paths = {int(p.stem): p for p in self.folder.glob("*.png") if p.stem.isdigit()}
        if not self.paths:
            raise BadInput(f"--gt-masks {self.folder}: no masks named by frame index (000000.png ...)")
        source = Path(classes) if classes is not None else self.folder / "classes.yaml"
        self.classes_file = source if (classes is not None or source.is_file()) else None
        self.names = list(ClassList.load(source).names) if self.classes_file is not None else None

    def match(
        self, model_names: list[str], model: str, class_map: dict[str, str] | None = None
    ) -> tuple[list[str], ClassMatch]:
        """The truth's class names and how the model's labels read as them (BadInput when they cannot)."""
        if self.names is None:
            if list(model_names) != list(SHELF10.names) and class_map is None:
                raise BadInput(
                    f"--gt-masks {self.folder}: no classes.yaml says what its labels mean, and "
                    f"{model} is not a default shelf10 model; pass --gt-classes FILE "
                    "(the masks' classes.yaml)"
                )
            names = list(SHELF10.names)
        else:
            names = self.names
        where = str(self.classes_file or "the shelf10 taxonomy")
        return names, match_classes(model_names, names, model, where, class_map)

    def get(self, index: int) -> np.ndarray | None:
        """The mask of frame `index` (uint8 class ids), or None when the folder has none for it."""
        path = self.paths.get(index)
        if path is None:
            return None
        return read_mask(path)

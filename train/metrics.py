"""Semantic segmentation metrics from a confusion matrix kept in tensors (torchvision reference style)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

IGNORE_INDEX = 255


class ConfusionMatrix:
    """Accumulates a (C, C) matrix `mat` with rows = ground truth, columns = prediction.

    `compute()` gives per-class IoU and Dice, their means and pixel accuracy. A class absent from
    both the predictions and the ground truth (its row and column are all zero) has IoU/Dice NaN
    and is left out of `miou` and `mean_dice`; a class present in either one counts (IoU 0 if never
    matched). Pixels whose target equals `ignore_index` are not counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of integer label maps of the same shape (either order gives the same scores)."""
        n = self.num_classes
        pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
        if self.mat is None:
            self.mat = torch.zeros((n, n), dtype=torch.int64, device=target.device)
        keep = (target != self.ignore_index) & (pred != self.ignore_index)
        pred, target = pred[keep], target[keep]
        if target.numel() and (min(int(pred.min()), int(target.min())) < 0
                               or max(int(pred.max()), int(target.max())) >= n):
            raise ValueError(f"labels must be in 0..{n - 1} or {self.ignore_index} (ignore); got "
                             f"{sorted(set(torch.cat([pred, target]).unique().tolist()))[:8]}")
        with torch.inference_mode():
            self.mat += torch.bincount(n * target.to(self.mat.device) + pred.to(self.mat.device),
                                       minlength=n**2).reshape(n, n)

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.mat = None

    def reduce_from_all_processes(self) -> None:
        """Sum the matrices of all ranks when torch.distributed is initialised (no-op otherwise)."""
        from prodseg.train.distributed import collective_device

        if self.mat is None:  # a rank without val images still joins the all-reduce
            self.mat = torch.zeros((self.num_classes,) * 2, dtype=torch.int64, device=collective_device())
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.all_reduce(self.mat)

    def compute(self) -> dict[str, Any]:
        """miou, iou (list per class), mean_dice, dice (list), pixel_accuracy; NaN marks absent classes."""
        n = self.num_classes
        mat = (self.mat if self.mat is not None else torch.zeros((n, n), dtype=torch.int64)).double().cpu()
        tp = mat.diag()
        gt, pr = mat.sum(1), mat.sum(0)
        present = (gt + pr) > 0
        nan = torch.full_like(tp, math.nan)
        iou = torch.where(present, tp / (gt + pr - tp).clamp(min=1e-12), nan)
        dice = torch.where(present, 2 * tp / (gt + pr).clamp(min=1e-12), nan)
        total = mat.sum()
        return {
            "miou": float(iou[present].mean()) if present.any() else math.nan,
            "iou": iou.tolist(),
            "mean_dice": float(dice[present].mean()) if present.any() else math.nan,
            "dice": dice.tolist(),
            "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        }

    def __str__(self) -> str:
        scores = self.compute()
        per_class = ", ".join("nan" if math.isnan(v) else f"{v:.3f}" for v in scores["iou"])
        return f"mIoU {scores['miou']:.4f}  pixel acc {scores['pixel_accuracy']:.4f}  IoU [{per_class}]"

"""Training-side view of the metrics core: accepts tensors on any device and all-reduces across ranks.

The counting and scoring are prodseg.metrics' (torch-free, shared with eval, export and bench); this
wrapper only moves label maps to the CPU and sums the matrices of all torchrun processes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from prodseg import metrics


class ConfusionMatrix:
    """`update(pred, target)` with tensors; `compute()` gives the core's scores as a dict."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.core = metrics.ConfusionMatrix(num_classes)

    @property
    def mat(self) -> Tensor:
        """The (C, C) int64 counts, rows = ground truth."""
        return torch.from_numpy(self.core.mat)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of integer label maps of the same shape (prediction, ground truth)."""
        self.core.update(target.detach().cpu().numpy(), pred.detach().cpu().numpy())

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.core = metrics.ConfusionMatrix(self.num_classes)

    def reduce_from_all_processes(self) -> None:
        """Sum the matrices of all ranks when torch.distributed is initialised (no-op otherwise)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        from prodseg.train.distributed import collective_device

        # every rank joins, also one without validation images (its matrix is zeros)
        mat = torch.from_numpy(self.core.mat).to(collective_device())
        dist.barrier()
        dist.all_reduce(mat)
        self.core.mat = mat.cpu().numpy()

    def compute(self) -> dict[str, Any]:
        """miou, iou (list per class), mean_dice, dice (list), pixel_accuracy; NaN marks absent classes."""
        return self.core.scores().as_dict()

    def __str__(self) -> str:
        s = self.core.scores()
        per_class = ", ".join(f"{v:.3f}" for v in s.iou)
        return f"mIoU {s.miou:.4f}  pixel acc {s.pixel_accuracy:.4f}  IoU [{per_class}]"

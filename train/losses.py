"""Segmentation losses: pure functions on logits (B,C,H,W) and int64 targets (B,H,W), modules, a compound.

Every function ignores pixels equal to `ignore_index` (255) and returns a 0-d tensor that is 0 (and
still differentiable) when a batch holds no valid pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prodseg.config import TrainingConfig, loss_problem
from prodseg.data.taxonomy import IGNORE_INDEX
from prodseg.errors import ConfigError


def cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Softmax cross-entropy; with `weight`, the weighted mean over valid pixels (torch semantics)."""
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)


def focal(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Softmax focal loss: mean over valid pixels of -a_t (1 - p_t)^gamma log p_t.

    `alpha` (when set) weighs foreground pixels (class > 0) by alpha and background by 1 - alpha.
    """
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    safe = torch.where(valid, target, torch.zeros_like(target))
    log_pt = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    if alpha is not None:
        loss = loss * torch.where(safe > 0, alpha, 1.0 - alpha)
    return loss[valid].mean()


def soft_dice(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX, eps: float = 1e-6) -> Tensor:
    """1 - mean soft Dice over the classes present in the batch's valid target pixels.

    Dice_c = (2 sum p_c t_c + eps) / (sum p_c + sum t_c + eps), sums over all valid pixels of the
    batch; ignored pixels count in neither the intersection nor the cardinalities.
    """
    valid = (target != ignore_index).unsqueeze(1)
    if not valid.any():
        return logits.sum() * 0.0
    num_classes = logits.shape[1]
    probs = F.softmax(logits.float(), dim=1) * valid
    safe = torch.where(valid.squeeze(1), target, torch.zeros_like(target))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(probs.dtype) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    card = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * inter + eps) / (card + eps)
    present = onehot.sum(dims) > 0
    return 1.0 - dice[present].mean()


class CrossEntropyLoss(nn.Module):
    """Module wrapper of `cross_entropy` (class weights as a buffer so they follow .to(device))."""

    def __init__(self, weight: Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.weight: Tensor | None
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, self.weight, self.ignore_index)


class FocalLoss(nn.Module):
    """Module wrapper of `focal`."""

    def __init__(
        self, gamma: float = 2.0, alpha: float | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.gamma, self.alpha, self.ignore_index = gamma, alpha, ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal(logits, target, self.gamma, self.alpha, self.ignore_index)


class DiceLoss(nn.Module):
    """Module wrapper of `soft_dice`."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, eps: float = 1e-6) -> None:
        super().__init__()
        self.ignore_index, self.eps = ignore_index, eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return soft_dice(logits, target, self.ignore_index, self.eps)


class CompoundLoss(nn.Module):
    """Weighted sum of named terms; `last_terms` holds the latest value of each term and the total, as
    detached 0-d tensors on the loss's device (a float() here would wait for the GPU on every step)."""

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)
        self.last_terms: dict[str, Tensor] = {}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        values = {name: term(logits, target) for name, term in self.terms.items()}
        total = sum(self.weights[name] * value for name, value in values.items())
        self.last_terms = {name: value.detach() for name, value in values.items()}
        self.last_terms["loss"] = total.detach()
        return total


def _ce(cfg: TrainingConfig, num_classes: int) -> nn.Module:
    weight = None
    if cfg.class_weights is not None:
        if len(cfg.class_weights) != num_classes:
            raise ConfigError(
                f"training.class_weights: {len(cfg.class_weights)} values for {num_classes} "
                "classes; give one weight per class (background first)"
            )
        weight = torch.tensor(cfg.class_weights, dtype=torch.float32)
    return CrossEntropyLoss(weight)


LOSSES: dict[str, Callable[[TrainingConfig, int], nn.Module]] = {
    "ce": _ce,
    "focal": lambda cfg, _n: FocalLoss(cfg.focal_gamma, cfg.focal_alpha),
    "dice": lambda _cfg, _n: DiceLoss(),
}


def build_loss(training_cfg: TrainingConfig, num_classes: int) -> CompoundLoss:
    """The compound loss named by `training.loss`, e.g. {ce: 1.0, dice: 0.5}."""
    spec = training_cfg.loss
    problem = loss_problem(spec)  # the config layer's own check, for configs built in code
    if problem:
        raise ConfigError(f"training.loss: {spec}: {problem}")
    terms = {name: LOSSES[name](training_cfg, num_classes) for name in spec}
    return CompoundLoss(terms, spec)

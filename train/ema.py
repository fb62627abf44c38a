"""An exponential moving average of the weights, as ultralytics' ModelEMA (always on in its trainer).

After every optimizer step `ema = d * ema + (1 - d) * weights` over every floating-point entry of the
state dict (BatchNorm running statistics included), with `d = decay * (1 - exp(-updates / tau))`: near 0
for the first steps (the average follows the weights) and rising to `decay`. Validation scores the
average and checkpoints deploy it; `last.pt` also keeps the live weights so a resume is exact.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from prodseg.config import Config

# Architectures whose EMA is on unless `training.ema.enabled` says otherwise (ultralytics' trainers).
EMA_BY_DEFAULT = frozenset({"yolov8_seg"})


def ema_enabled(cfg: Config) -> bool:
    """`training.ema.enabled`, or (null) the architecture's default."""
    enabled = cfg.training.ema.enabled
    return cfg.model.architecture in EMA_BY_DEFAULT if enabled is None else enabled


class ModelEMA:
    """The averaged copy (`module`, in eval mode, no gradients) and the number of updates made."""

    def __init__(self, model: nn.Module, decay: float, tau: float, updates: int = 0) -> None:
        self.module = copy.deepcopy(getattr(model, "module", model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def factor(self, updates: int) -> float:
        """d after `updates` updates."""
        return self.decay * (1.0 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the live weights in (call once per optimizer step)."""
        self.updates += 1
        d = self.factor(self.updates)
        live = getattr(model, "module", model).state_dict()
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:  # integer buffers (num_batches_tracked) are not averaged
                value.mul_(d)
                value.add_(live[key].detach(), alpha=1.0 - d)

    def checkpoint_entry(self, live_weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        """What a checkpoint stores beside the averaged weights: the live weights and the update count."""
        return {"updates": self.updates, "live_model": live_weights}


def build_ema(cfg: Config, model: nn.Module, ckpt: dict[str, Any] | None = None) -> ModelEMA | None:
    """The EMA of `model` when enabled; from a checkpoint, the stored average (`ckpt['model']`) and count."""
    if not ema_enabled(cfg):
        return None
    settings = cfg.training.ema
    ema = ModelEMA(model, settings.decay, settings.tau)
    if ckpt is not None and isinstance(ckpt.get("ema"), dict):
        ema.module.load_state_dict(ckpt["model"], strict=True)
        ema.updates = int(ckpt["ema"]["updates"])
    return ema


def live_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights training continues from: the live ones when the checkpoint holds an EMA."""
    entry = ckpt.get("ema")
    return entry["live_model"] if isinstance(entry, dict) else ckpt["model"]

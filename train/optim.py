"""Optimizers (adam, adamw, sgd) and per-iteration LR schedules with linear warmup and a `min_lr` floor.

A schedule is a pure function `factor(step) -> multiplier of the base LR`; `build_scheduler` wraps it
in a `LambdaLR`, so its state dict is just the step count and a resumed run continues on the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from prodseg.config import TrainingConfig
from prodseg.errors import ConfigError


def _adam(params: Iterable, cfg: TrainingConfig) -> torch.optim.Optimizer:
    hp = cfg.hyperparameters
    return torch.optim.Adam(
        params, lr=hp.learning_rate, betas=tuple(cfg.optimizer.betas), weight_decay=hp.weight_decay
    )


def _adamw(params: Iterable, cfg: TrainingConfig) -> torch.optim.Optimizer:
    hp = cfg.hyperparameters
    return torch.optim.AdamW(
        params, lr=hp.learning_rate, betas=tuple(cfg.optimizer.betas), weight_decay=hp.weight_decay
    )


def _sgd(params: Iterable, cfg: TrainingConfig) -> torch.optim.Optimizer:
    hp, opt = cfg.hyperparameters, cfg.optimizer
    return torch.optim.SGD(
        params,
        lr=hp.learning_rate,
        momentum=opt.momentum,
        nesterov=opt.nesterov,
        weight_decay=hp.weight_decay,
    )


OPTIMIZERS: dict[str, Callable[[Iterable, TrainingConfig], torch.optim.Optimizer]] = {
    "adam": _adam,
    "adamw": _adamw,
    "sgd": _sgd,
}


def build_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """The optimizer named by `cfg.optimizer.type` over the model's trainable parameters."""
    if cfg.optimizer.type not in OPTIMIZERS:
        raise ConfigError(
            f"training.optimizer.type: unknown optimizer {cfg.optimizer.type!r}; "
            f"choose one of {', '.join(OPTIMIZERS)}"
        )
    if cfg.optimizer.type == "sgd" and cfg.optimizer.nesterov and cfg.optimizer.momentum == 0:
        raise ConfigError("training.optimizer.nesterov: needs momentum > 0; set optimizer.momentum")
    params = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS[cfg.optimizer.type](params, cfg)


@dataclass(frozen=True)
class Schedule:
    """Where the schedule stands: iteration counts and the LR floor as a fraction of the base LR."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    min_ratio: float
    step_size: int  # epochs, for "step"
    gamma: float


def _cosine(s: Schedule, step: int) -> float:
    decay = max(1, s.total_steps - s.warmup_steps)
    progress = min(1.0, (step - s.warmup_steps) / decay)
    return s.min_ratio + (1.0 - s.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _step(s: Schedule, step: int) -> float:
    epoch = (step - s.warmup_steps) // s.steps_per_epoch
    return max(s.min_ratio, s.gamma ** (epoch // s.step_size))


def _exponential(s: Schedule, step: int) -> float:
    # Decays by gamma per epoch, smoothly per iteration.
    return max(s.min_ratio, s.gamma ** ((step - s.warmup_steps) / s.steps_per_epoch))


def _constant(s: Schedule, step: int) -> float:
    return 1.0


SCHEDULES: dict[str, Callable[[Schedule, int], float]] = {
    "cosine": _cosine,
    "step": _step,
    "exponential": _exponential,
    "constant": _constant,
}


def lr_factor(kind: str, s: Schedule, step: int) -> float:
    """LR multiplier at optimizer step `step` (0-based): linear warmup, then the named decay."""
    if step < s.warmup_steps:
        return (step + 1) / s.warmup_steps
    return SCHEDULES[kind](s, step)


def make_schedule(cfg: TrainingConfig, steps_per_epoch: int) -> Schedule:
    """Turn the config's epoch-based settings into iteration counts."""
    sc, hp = cfg.scheduler, cfg.hyperparameters
    steps_per_epoch = max(1, steps_per_epoch)
    total = hp.num_epochs * steps_per_epoch
    warmup = min(total, round(sc.warmup_epochs * steps_per_epoch))
    return Schedule(
        steps_per_epoch,
        total,
        warmup,
        min(1.0, sc.min_lr / hp.learning_rate) if hp.learning_rate > 0 else 0.0,
        sc.step_size,
        sc.gamma,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainingConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step, following `lr_factor`."""
    kind = cfg.scheduler.type
    if kind not in SCHEDULES:
        raise ConfigError(
            f"training.scheduler.type: unknown scheduler {kind!r}; choose one of {', '.join(SCHEDULES)}"
        )
    schedule = make_schedule(cfg, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(kind, schedule, step))

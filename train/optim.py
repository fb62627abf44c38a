"""Optimizers (adam, adamw, sgd) and per-iteration LR schedules with linear warmup and a `min_lr` floor.

A schedule is a pure function `factor(step) -> multiplier of the base LR`; `build_scheduler` wraps it
in a `LambdaLR` whose state dict holds the step count and the plan (a `Schedule`), so a resumed run
continues on the same curve, and a run extended to more epochs re-plans its decay from where it stands.

Parameter groups follow ultralytics when asked: biases (first group, so their warmup can start high),
weights with decay, and norm-layer weights without decay.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prodseg.config import TrainingConfig
from prodseg.errors import ConfigError

log = logging.getLogger("prodseg.train")
# Every torch norm layer (BatchNorm*, GroupNorm, LayerNorm, ...): their weights get no decay in ultralytics.
NORM_LAYERS = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
BIAS_GROUP = "bias"


def _adam(params: Iterable, cfg: TrainingConfig) -> torch.optim.Optimizer:
    hp = cfg.hyperparameters
    return torch.optim.Adam(params, lr=hp.learning_rate, betas=_betas(cfg), weight_decay=hp.weight_decay)


def _betas(cfg: TrainingConfig) -> tuple[float, float]:
    first, second = cfg.optimizer.betas  # the config checked: exactly two values in [0, 1)
    return float(first), float(second)


def _adamw(params: Iterable, cfg: TrainingConfig) -> torch.optim.Optimizer:
    hp = cfg.hyperparameters
    return torch.optim.AdamW(params, lr=hp.learning_rate, betas=_betas(cfg), weight_decay=hp.weight_decay)


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
    return OPTIMIZERS[cfg.optimizer.type](param_groups(model, cfg), cfg)


def param_groups(model: nn.Module, cfg: TrainingConfig) -> list[dict[str, Any]]:
    """One group of all trainable parameters, or ultralytics' three: biases, decayed weights, norm weights.

    The split is made when biases/norm weights skip weight decay or biases have their own warmup LR;
    each group carries a `name` (bias, decay, no_decay), and empty groups are left out.
    """
    if cfg.optimizer.decay_bias_and_norm and cfg.scheduler.warmup_bias_lr is None:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    split: dict[str, list[nn.Parameter]] = {BIAS_GROUP: [], "decay": [], "no_decay": []}
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            norm = isinstance(module, NORM_LAYERS)
            split[BIAS_GROUP if "bias" in name else "no_decay" if norm else "decay"].append(param)
    decay = cfg.hyperparameters.weight_decay
    no_decay = decay if cfg.optimizer.decay_bias_and_norm else 0.0
    rates = {BIAS_GROUP: no_decay, "decay": decay, "no_decay": no_decay}
    return [
        {"params": params, "weight_decay": rates[kind], "name": kind}
        for kind, params in split.items()
        if params
    ]


@dataclass(frozen=True)
class Schedule:
    """Where the schedule stands: iteration counts and the LR floor as a fraction of the base LR."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    min_ratio: float
    step_size: int  # epochs, for "step"
    gamma: float
    # Where the cosine decay starts and from which factor: the end of warmup and 1.0, unless a resumed run
    # was extended to more epochs, whose decay is re-planned from the step it stood at.
    decay_start: int = -1  # -1: warmup_steps
    peak: float = 1.0
    bias_start: float = 0.0  # warmup_bias_lr / learning_rate: the bias group's factor at step 0

    @property
    def decay_from(self) -> int:
        return self.warmup_steps if self.decay_start < 0 else self.decay_start


def _cosine(s: Schedule, step: int) -> float:
    start = s.decay_from
    progress = min(1.0, max(0.0, step - start) / max(1, s.total_steps - start))
    return s.min_ratio + (s.peak - s.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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


def bias_lr_factor(kind: str, s: Schedule, step: int) -> float:
    """The bias group's factor: during warmup it falls linearly from `bias_start` to the others' LR
    (ultralytics' warmup_bias_lr), afterwards it is `lr_factor`."""
    if step < s.warmup_steps:
        done = (step + 1) / s.warmup_steps
        return (1.0 - done) * s.bias_start + done * SCHEDULES[kind](s, s.warmup_steps)
    return lr_factor(kind, s, step)


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
        bias_start=(sc.warmup_bias_lr or 0.0) / hp.learning_rate,
    )


class PlannedLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR over a `Schedule` (the bias group on `bias_lr_factor` when warmup_bias_lr is set) whose
    state dict carries the plan as plain numbers, so `torch.load(weights_only=True)` reads it back."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, kind: str, plan: Schedule, bias_warmup: bool
    ) -> None:
        self.kind, self.plan = kind, plan
        lambdas = [
            (lambda step: bias_lr_factor(self.kind, self.plan, step))
            if bias_warmup and group.get("name") == BIAS_GROUP
            else (lambda step: lr_factor(self.kind, self.plan, step))
            for group in optimizer.param_groups
        ]
        super().__init__(optimizer, lambdas)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["plan"] = dataclasses.asdict(self.plan)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step count; keep the stored plan unless the run was extended (then re-plan)."""
        state = dict(state_dict)
        stored = state.pop("plan", None)
        planned = self.plan
        super().load_state_dict(state)
        self.plan = planned if stored is None else Schedule(**stored)
        if self.plan.total_steps != planned.total_steps:
            self.plan = replan(self.kind, self.plan, planned, self.last_epoch)


def replan(kind: str, old: Schedule, new: Schedule, step: int) -> Schedule:
    """`new`'s length with the decay continuing from where `old` stands at `step` (no jump in LR).

    A finished run extended with `--resume last.pt --epochs N` keeps training at its current (low) LR,
    cosine-decayed to min_lr over the added epochs, instead of climbing back up `new`'s curve.
    """
    if step < old.warmup_steps or kind != "cosine":
        # In warmup the curve does not depend on the length; step/exponential/constant never do.
        plan = dataclasses.replace(new, decay_start=old.decay_start, peak=old.peak)
    else:
        plan = dataclasses.replace(new, decay_start=step, peak=lr_factor(kind, old, step))
    log.info(
        "resume: the run was planned for %d optimizer steps and now runs %d; the LR schedule is "
        "re-planned from step %d (%.3g x the base LR) down to the floor at step %d",
        old.total_steps,
        new.total_steps,
        step,
        lr_factor(kind, plan, step),
        new.total_steps,
    )
    return plan


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig, steps_per_epoch: int) -> PlannedLR:
    """A LambdaLR stepped once per optimizer step, following `lr_factor` (and `bias_lr_factor`)."""
    kind = cfg.scheduler.type
    if kind not in SCHEDULES:
        raise ConfigError(
            f"training.scheduler.type: unknown scheduler {kind!r}; choose one of {', '.join(SCHEDULES)}"
        )
    bias_warmup = cfg.scheduler.warmup_bias_lr is not None
    return PlannedLR(optimizer, kind, make_schedule(cfg, steps_per_epoch), bias_warmup)

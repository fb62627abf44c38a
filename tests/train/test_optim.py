"""Optimizers from the config and exact LR schedule values (warmup, decay, floor)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prodseg.config import load_config
from prodseg.errors import ConfigError
from prodseg.train.optim import Schedule, build_optimizer, build_scheduler, lr_factor, make_schedule


def cfg(**over):
    return load_config(None, {f"training.{k}": v for k, v in over.items()}).training


def test_make_schedule_turns_epochs_into_steps():
    s = make_schedule(
        cfg(
            **{
                "hyperparameters.num_epochs": 3,
                "hyperparameters.learning_rate": 1e-3,
                "scheduler.warmup_epochs": 0.5,
                "scheduler.min_lr": 1e-5,
            }
        ),
        steps_per_epoch=10,
    )
    assert (s.total_steps, s.warmup_steps, s.steps_per_epoch) == (30, 5, 10)
    assert s.min_ratio == pytest.approx(0.01)


def test_linear_warmup_then_cosine_to_the_floor():
    s = Schedule(steps_per_epoch=10, total_steps=30, warmup_steps=5, min_ratio=0.01, step_size=1, gamma=0.1)
    assert [lr_factor("cosine", s, i) for i in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lr_factor("cosine", s, 5) == pytest.approx(1.0)
    assert lr_factor("cosine", s, 5 + 25 // 2) == pytest.approx(
        0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 12 / 25))
    )
    assert lr_factor("cosine", s, 30) == pytest.approx(0.01)
    assert lr_factor("cosine", s, 99) == pytest.approx(0.01)  # never below min_lr


def test_step_exponential_constant():
    s = Schedule(steps_per_epoch=10, total_steps=100, warmup_steps=0, min_ratio=0.001, step_size=2, gamma=0.1)
    assert [lr_factor("step", s, i) for i in (0, 19, 20, 39, 40)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor("step", s, 99) == pytest.approx(0.001)  # 0.1**4 floored at min_ratio
    e = Schedule(steps_per_epoch=10, total_steps=100, warmup_steps=0, min_ratio=0.0, step_size=1, gamma=0.5)
    assert lr_factor("exponential", e, 5) == pytest.approx(0.5**0.5)
    assert lr_factor("exponential", e, 20) == pytest.approx(0.25)
    assert lr_factor("constant", e, 77) == 1.0


def test_scheduler_sets_the_lr_per_iteration_and_resumes_on_the_same_curve():
    training = cfg(
        **{
            "hyperparameters.num_epochs": 2,
            "hyperparameters.learning_rate": 0.1,
            "scheduler.type": "cosine",
            "scheduler.warmup_epochs": 1,
            "scheduler.min_lr": 0.0,
        }
    )
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, training)
    sched = build_scheduler(opt, training, steps_per_epoch=4)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.025, 0.05, 0.075, 0.1] + [0.1 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert seen == pytest.approx(expected)
    # A fresh scheduler loaded from the state dict after 3 steps continues identically.
    opt2 = build_optimizer(model, training)
    sched2 = build_scheduler(opt2, training, steps_per_epoch=4)
    for _ in range(3):
        opt2.step()
        sched2.step()
    opt3 = build_optimizer(model, training)
    sched3 = build_scheduler(opt3, training, steps_per_epoch=4)
    sched3.load_state_dict(sched2.state_dict())
    opt3.load_state_dict(opt2.state_dict())
    assert opt3.param_groups[0]["lr"] == pytest.approx(expected[3])


@pytest.mark.parametrize(
    "name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_optimizers_take_the_config_settings(name, cls):
    training = cfg(
        **{
            "optimizer.type": name,
            "optimizer.betas": [0.8, 0.99],
            "optimizer.momentum": 0.7,
            "optimizer.nesterov": True,
            "hyperparameters.weight_decay": 0.01,
            "hyperparameters.learning_rate": 0.02,
        }
    )
    opt = build_optimizer(nn.Linear(3, 1), training)
    group = opt.param_groups[0]
    assert isinstance(opt, cls)
    assert (group["lr"], group["weight_decay"]) == (0.02, 0.01)
    if name == "sgd":
        assert (group["momentum"], group["nesterov"]) == (0.7, True)
    else:
        assert group["betas"] == (0.8, 0.99)


def test_frozen_parameters_are_left_out_and_nesterov_needs_momentum():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].weight.requires_grad_(False)
    opt = build_optimizer(model, cfg())
    assert sum(len(g["params"]) for g in opt.param_groups) == 3
    with pytest.raises(ConfigError, match="momentum"):
        build_optimizer(
            model, cfg(**{"optimizer.type": "sgd", "optimizer.nesterov": True, "optimizer.momentum": 0.0})
        )

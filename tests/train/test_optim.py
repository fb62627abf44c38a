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


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 2, 1, bias=True)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_by_default_one_group_holds_every_trainable_parameter():
    model = ConvBN()
    opt = build_optimizer(model, cfg(**{"hyperparameters.weight_decay": 0.01}))
    assert len(opt.param_groups) == 1
    assert len(opt.param_groups[0]["params"]) == 6 and opt.param_groups[0]["weight_decay"] == 0.01


def test_ultralytics_groups_put_biases_first_and_norm_weights_without_decay():
    model = ConvBN()
    opt = build_optimizer(
        model, cfg(**{"hyperparameters.weight_decay": 0.01, "optimizer.decay_bias_and_norm": False})
    )
    groups = {g["name"]: g for g in opt.param_groups}
    assert [g["name"] for g in opt.param_groups] == ["bias", "decay", "no_decay"]
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert ids["bias"] == {id(model.conv.bias), id(model.bn.bias), id(model.head.bias)}
    assert ids["decay"] == {id(model.conv.weight), id(model.head.weight)}
    assert ids["no_decay"] == {id(model.bn.weight)}
    assert [groups[n]["weight_decay"] for n in ("bias", "decay", "no_decay")] == [0.0, 0.01, 0.0]


def test_bias_warmup_alone_splits_the_groups_but_keeps_their_decay():
    opt = build_optimizer(
        ConvBN(), cfg(**{"hyperparameters.weight_decay": 0.01, "scheduler.warmup_bias_lr": 0.1})
    )
    assert [(g["name"], g["weight_decay"]) for g in opt.param_groups] == [
        ("bias", 0.01),
        ("decay", 0.01),
        ("no_decay", 0.01),
    ]


def test_biases_warm_up_from_warmup_bias_lr_down_to_the_schedule():
    train = cfg(
        **{
            "hyperparameters.learning_rate": 0.01,
            "hyperparameters.num_epochs": 2,
            "scheduler.warmup_epochs": 1,
            "scheduler.warmup_bias_lr": 0.1,
            "optimizer.decay_bias_and_norm": False,
        }
    )
    opt = build_optimizer(ConvBN(), train)
    sched = build_scheduler(opt, train, steps_per_epoch=4)
    bias_lrs, weight_lrs = [], []
    for _ in range(5):
        bias_lrs.append(opt.param_groups[0]["lr"])
        weight_lrs.append(opt.param_groups[1]["lr"])
        opt.step()
        sched.step()
    # factor 10 at step 0 falling linearly to 1 at the end of warmup: (1 - t) * 10 + t with t = (i + 1) / 4
    assert bias_lrs[:4] == pytest.approx([0.01 * ((1 - t) * 10 + t) for t in (0.25, 0.5, 0.75, 1.0)])
    assert weight_lrs[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert bias_lrs[4] == pytest.approx(weight_lrs[4])  # after warmup every group follows one curve
    assert opt.param_groups[0]["lr"] == opt.param_groups[1]["lr"] == opt.param_groups[2]["lr"]


def _scheduler(epochs: int, steps: int = 0):
    train = cfg(
        **{
            "hyperparameters.learning_rate": 1.0,
            "hyperparameters.num_epochs": epochs,
            "scheduler.warmup_epochs": 1,
            "scheduler.min_lr": 0.01,
        }
    )
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, train, steps_per_epoch=10)
    for _ in range(steps):
        opt.step()
        sched.step()
    return opt, sched


def test_a_resume_with_the_same_length_continues_the_stored_plan_exactly():
    _, straight = _scheduler(4, steps=40)
    _, half = _scheduler(4, steps=20)
    opt, resumed = _scheduler(4)
    opt.load_state_dict(half.optimizer.state_dict())
    resumed.load_state_dict(half.state_dict())
    for _ in range(20):
        opt.step()
        resumed.step()
    assert resumed.get_last_lr() == straight.get_last_lr()


def test_extending_a_finished_run_re_plans_the_decay_from_where_it_stands(caplog):
    finished_opt, finished = _scheduler(4, steps=40)
    assert finished.get_last_lr()[0] == pytest.approx(0.01)  # at the floor
    opt, longer = _scheduler(8)
    opt.load_state_dict(finished_opt.state_dict())
    with caplog.at_level("INFO", logger="prodseg.train"):
        longer.load_state_dict(finished.state_dict())
    assert "re-planned from step 40" in caplog.text
    lrs = []
    for _ in range(40):
        opt.step()
        longer.step()
        lrs.append(longer.get_last_lr()[0])
    assert max(lrs) == pytest.approx(0.01)  # no climb back up the 8-epoch cosine (0.5 at step 40)


def test_extending_mid_decay_continues_from_the_current_lr_down_to_the_floor():
    half_opt, half = _scheduler(4, steps=25)
    now = half.get_last_lr()[0]
    opt, longer = _scheduler(8)
    opt.load_state_dict(half_opt.state_dict())
    longer.load_state_dict(half.state_dict())
    lrs = []
    for _ in range(55):
        opt.step()
        longer.step()
        lrs.append(longer.get_last_lr()[0])
    assert lrs[0] == pytest.approx(now, rel=0.01) and lrs == sorted(lrs, reverse=True)
    assert lrs[-1] == pytest.approx(0.01)
    # the re-planned curve is stored: a second resume at the new length follows it exactly
    again_opt, again = _scheduler(8)
    again.load_state_dict(longer.state_dict())
    assert again.plan == longer.plan and again.plan.decay_start == 25

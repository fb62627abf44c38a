"""Exact-value tests of the losses on 1x2x1x2 logits worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from prodseg.config import TrainingConfig
from prodseg.errors import ConfigError
from prodseg.train.losses import CompoundLoss, build_loss, cross_entropy, focal, soft_dice

# Pixel a: logits (0, 0), target 0 -> p_t = 1/2.  Pixel b: logits (2, 0), target 1 -> p_t = 1/(1+e^2).
LOGITS = torch.tensor([[[[0.0, 2.0]], [[0.0, 0.0]]]])
TARGET = torch.tensor([[[0, 1]]])
LOSS_A, LOSS_B = math.log(2), math.log(1 + math.e**2)
PT_B = 1 / (1 + math.e**2)


def test_cross_entropy_mean_weighted_and_ignored() -> None:
    assert cross_entropy(LOGITS, TARGET).item() == pytest.approx((LOSS_A + LOSS_B) / 2, abs=1e-6)
    weighted = cross_entropy(LOGITS, TARGET, weight=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx((LOSS_A + 3 * LOSS_B) / 4, abs=1e-6)
    assert cross_entropy(LOGITS, torch.tensor([[[0, 255]]])).item() == pytest.approx(LOSS_A, abs=1e-6)


def test_all_ignored_gives_zero_with_gradient() -> None:
    logits = LOGITS.clone().requires_grad_(True)
    for fn in (cross_entropy, focal, soft_dice):
        loss = fn(logits, torch.full((1, 1, 2), 255))
        assert loss.item() == 0.0
        loss.backward()


def test_focal_gamma_and_alpha() -> None:
    expected = (0.25 * LOSS_A + (1 - PT_B) ** 2 * LOSS_B) / 2
    assert focal(LOGITS, TARGET, gamma=2.0).item() == pytest.approx(expected, abs=1e-6)
    assert focal(LOGITS, TARGET, gamma=0.0).item() == pytest.approx((LOSS_A + LOSS_B) / 2, abs=1e-6)
    # alpha weighs foreground (class > 0) by alpha, background by 1 - alpha.
    with_alpha = (0.75 * 0.25 * LOSS_A + 0.25 * (1 - PT_B) ** 2 * LOSS_B) / 2
    assert focal(LOGITS, TARGET, gamma=2.0, alpha=0.25).item() == pytest.approx(with_alpha, abs=1e-6)


def test_soft_dice_multiclass() -> None:
    q = 1 - PT_B  # softmax probability of class 0 at pixel b
    dice0 = 2 * 0.5 / ((0.5 + q) + 1)
    dice1 = 2 * (1 - q) / ((0.5 + 1 - q) + 1)
    assert soft_dice(LOGITS, TARGET, eps=0.0).item() == pytest.approx(1 - (dice0 + dice1) / 2, abs=1e-6)


def test_soft_dice_ignores_pixels_in_intersection_and_cardinality() -> None:
    target = torch.tensor([[[0, 255]]])
    # Only pixel a counts: class 0 has Dice 2*0.5/(0.5+1); class 1 is absent from the target.
    assert soft_dice(LOGITS, target, eps=0.0).item() == pytest.approx(1 - 2 / 3, abs=1e-6)
    changed = LOGITS.clone()
    changed[0, :, 0, 1] = torch.tensor([-5.0, 9.0])
    assert soft_dice(changed, target, eps=0.0).item() == pytest.approx(1 - 2 / 3, abs=1e-6)


def test_build_loss_compound_and_terms() -> None:
    loss = build_loss(TrainingConfig(loss={"ce": 1.0, "dice": 0.5}), num_classes=2)
    assert isinstance(loss, CompoundLoss)
    total = loss(LOGITS, TARGET)
    ce = (LOSS_A + LOSS_B) / 2
    dice = soft_dice(LOGITS, TARGET).item()
    assert total.item() == pytest.approx(ce + 0.5 * dice, abs=1e-6)
    assert loss.last_terms["ce"] == pytest.approx(ce, abs=1e-6)
    assert loss.last_terms["dice"] == pytest.approx(dice, abs=1e-6)
    assert loss.last_terms["loss"] == pytest.approx(total.item(), abs=1e-6)


def test_build_loss_class_weights_and_focal_settings() -> None:
    cfg = TrainingConfig(loss={"ce": 1.0, "focal": 2.0}, class_weights=[1.0, 3.0], focal_gamma=0.0)
    total = build_loss(cfg, 2)(LOGITS, TARGET).item()
    assert total == pytest.approx((LOSS_A + 3 * LOSS_B) / 4 + 2 * (LOSS_A + LOSS_B) / 2, abs=1e-6)


@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        (TrainingConfig(loss={"lovasz": 1.0}), ["lovasz", "ce, focal, dice"]),
        (TrainingConfig(loss={"ce": 0.0}), ["positive weight"]),
        (TrainingConfig(class_weights=[1.0, 2.0, 3.0]), ["3 values for 2 classes"]),
    ],
)
def test_build_loss_errors_name_the_problem(cfg: TrainingConfig, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        build_loss(cfg, 2)
    for word in words:
        assert word in str(err.value)

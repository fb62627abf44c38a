"""Mask mAP via COCOeval on trivial, hand-checkable cases."""

from __future__ import annotations

import math

import pytest
import torch

from prodseg.train.instance_metrics import MaskMAP


def two_instances() -> tuple[torch.Tensor, torch.Tensor]:
    sem = torch.zeros(32, 32, dtype=torch.long)
    inst = torch.zeros_like(sem)
    sem[2:10, 2:10], inst[2:10, 2:10] = 3, 1
    sem[15:30, 15:30], inst[15:30, 15:30] = 3, 7
    return sem, inst


def det(inst: torch.Tensor, inst_id: int, score: float, class_id: int = 3) -> dict:
    return {"score": score, "class_id": class_id, "mask": (inst == inst_id).numpy()}


def test_perfect_predictions_score_one() -> None:
    sem, inst = two_instances()
    scorer = MaskMAP(10)
    scorer.add(sem, inst, [det(inst, 1, 0.9), det(inst, 7, 0.8)])
    assert scorer.compute() == {"map50": 1.0, "map50_95": 1.0}


def test_half_recall_is_51_of_101_points() -> None:
    sem, inst = two_instances()
    scorer = MaskMAP(10)
    scorer.add(sem, inst, [det(inst, 1, 0.9)])
    # COCO interpolates precision at 101 recall points; recall 0.5 reaches 51 of them with precision 1.
    assert scorer.compute()["map50"] == pytest.approx(51 / 101)


def test_wrong_class_scores_zero_and_no_predictions_scores_zero() -> None:
    sem, inst = two_instances()
    scorer = MaskMAP(10)
    scorer.add(sem, inst, [det(inst, 1, 0.9, class_id=4), det(inst, 7, 0.9, class_id=4)])
    assert scorer.compute()["map50"] == 0.0
    empty = MaskMAP(10)
    empty.add(sem, inst, [])
    assert empty.compute() == {"map50": 0.0, "map50_95": 0.0}


def test_no_ground_truth_is_nan() -> None:
    scorer = MaskMAP(10)
    scorer.add(torch.zeros(8, 8, dtype=torch.long), torch.zeros(8, 8, dtype=torch.long), [])
    assert all(math.isnan(v) for v in scorer.compute().values())


def test_mask_iou_between_thresholds_counts_only_low_ones() -> None:
    sem, inst = two_instances()
    half = torch.zeros_like(inst)
    half[2:10, 2:6] = 1  # IoU 0.5 with instance 1 exactly
    scorer = MaskMAP(10)
    scorer.add(sem, inst.masked_fill(inst == 7, 0), [det(half, 1, 0.9)])
    scores = scorer.compute()
    assert scores["map50"] == pytest.approx(1.0)
    assert scores["map50_95"] == pytest.approx(0.1)  # matched only at the 0.50 threshold of ten

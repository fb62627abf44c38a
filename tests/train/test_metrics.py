"""Exact-value tests of the confusion-matrix metrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prodseg.train.metrics import ConfusionMatrix

PRED = torch.tensor([[[0, 1], [1, 1]]])
TARGET = torch.tensor([[[0, 1], [0, 255]]])


def test_matrix_rows_are_ground_truth_and_ignore_is_skipped() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.mat.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_scores_exact_and_absent_class_is_nan_and_left_out() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    scores = cm.compute()
    # class 0: tp 1, gt 2, pred 1 -> IoU 1/2, Dice 2/3; class 1: tp 1, gt 1, pred 2 -> the same.
    assert scores["iou"][:2] == pytest.approx([0.5, 0.5])
    assert scores["dice"][:2] == pytest.approx([2 / 3, 2 / 3])
    assert math.isnan(scores["iou"][2]) and math.isnan(scores["dice"][2])
    assert scores["miou"] == pytest.approx(0.5)
    assert scores["mean_dice"] == pytest.approx(2 / 3)
    assert scores["pixel_accuracy"] == pytest.approx(2 / 3)


def test_class_only_predicted_counts_as_zero() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([2, 1]), torch.tensor([1, 1]))
    scores = cm.compute()
    assert scores["iou"][1:] == pytest.approx([0.5, 0.0])
    assert math.isnan(scores["iou"][0])
    assert scores["miou"] == pytest.approx(0.25)


def test_perfect_prediction_and_accumulation_over_batches() -> None:
    cm = ConfusionMatrix(4)
    target = torch.tensor([[0, 1, 2, 3], [3, 3, 255, 0]])
    cm.update(target.clamp(max=3), target)
    cm.update(torch.tensor([1]), torch.tensor([1]))
    cm.reduce_from_all_processes()  # no process group: unchanged
    scores = cm.compute()
    assert scores["miou"] == 1.0 and scores["mean_dice"] == 1.0 and scores["pixel_accuracy"] == 1.0
    assert int(cm.mat.sum()) == 8


def test_out_of_range_label_is_an_error() -> None:
    with pytest.raises(ValueError, match="0..2"):
        ConfusionMatrix(3).update(torch.tensor([3]), torch.tensor([0]))


def test_empty_matrix_computes_nan() -> None:
    scores = ConfusionMatrix(2).compute()
    assert math.isnan(scores["miou"]) and math.isnan(scores["pixel_accuracy"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 2, 3, 255])), min_size=1, max_size=40))
def test_matches_a_per_class_set_definition(pairs: list[tuple[int, int]]) -> None:
    pred = torch.tensor([p for p, _ in pairs])
    target = torch.tensor([t for _, t in pairs])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    scores = cm.compute()
    valid = target != 255
    for c in range(4):
        p, t = (pred == c) & valid, (target == c) & valid
        union = int((p | t).sum())
        if union == 0:
            assert math.isnan(scores["iou"][c])
        else:
            assert scores["iou"][c] == pytest.approx(int((p & t).sum()) / union)
            assert scores["dice"][c] == pytest.approx(2 * int((p & t).sum()) / int(p.sum() + t.sum()))

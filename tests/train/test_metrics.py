"""The training wrapper of the metrics core: tensors in, the core's scores out (the maths: tests/prodseg)."""

from __future__ import annotations

import pytest
import torch

from prodseg.metrics import LabelOutOfRange
from prodseg.train.metrics import ConfusionMatrix

PRED = torch.tensor([[[0, 1], [1, 1]]])
TARGET = torch.tensor([[[0, 1], [0, 255]]])


def test_tensors_are_counted_with_rows_as_ground_truth() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.mat.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert cm.compute()["miou"] == 0.5


def test_accumulation_reset_and_the_single_process_reduce() -> None:
    cm = ConfusionMatrix(4)
    target = torch.tensor([[0, 1, 2, 3], [3, 3, 255, 0]])
    cm.update(target.clamp(max=3), target)
    cm.update(torch.tensor([1]), torch.tensor([1]))
    cm.reduce_from_all_processes()  # no process group: unchanged
    scores = cm.compute()
    assert scores["miou"] == 1.0 and scores["mean_dice"] == 1.0 and int(cm.mat.sum()) == 8
    cm.reset()
    assert int(cm.mat.sum()) == 0


def test_out_of_range_labels_are_the_cores_error() -> None:
    with pytest.raises(LabelOutOfRange, match="0..2"):
        ConfusionMatrix(3).update(torch.tensor([3]), torch.tensor([0]))

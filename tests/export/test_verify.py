from __future__ import annotations

import math

import numpy as np

from prodseg.export.config import Thresholds
from prodseg.export.verify import VerifyRow, confusion, judge, max_abs_diff, miou


def test_confusion_ignores_255_and_counts_exactly():
    gt = np.array([[0, 1], [1, 255]], np.uint8)
    pred = np.array([[0, 1], [0, 1]], np.uint8)
    assert confusion(pred, gt, 2).tolist() == [[1, 0], [1, 1]]


def test_miou_exact_and_absent_classes_excluded():
    mat = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])  # class 2 absent from both
    # IoU0 = 1 / (2 + 1 - 1) = 0.5, IoU1 = 1 / (1 + 2 - 1) = 0.5
    assert miou(mat) == 50.0
    assert math.isnan(miou(np.zeros((2, 2), int)))


def test_max_abs_diff_by_name_then_position():
    ref = {"logits": np.zeros((1, 2)), "b": np.ones((1, 2))}
    assert max_abs_diff({"b": np.full((1, 2), 1.5), "logits": np.zeros((1, 2))}, ref) == 0.5
    assert max_abs_diff({"x": np.full((1, 2), 0.25), "y": np.ones((1, 2))}, ref) == 0.25


def row(precision, agreement=100.0, delta=0.0):
    return VerifyRow("a", "p", precision, "onnxruntime", 1.0, 0.0, agreement, 50.0, 50.0 + delta, delta, 1.0)


def test_thresholds_per_precision():
    t = Thresholds()
    assert judge(row("fp32", 99.95), t).status == "ok"
    assert judge(row("fp32", 99.8), t).status == "WARN"
    assert judge(row("fp16", 99.6), t).status == "ok"
    assert judge(row("fp16", 99.4), t).status == "WARN"
    assert judge(row("int8", 90.0, delta=0.9), t).status == "ok"
    bad = judge(row("int8", 100.0, delta=1.2), t)
    assert bad.status == "WARN" and "ΔmIoU 1.20" in bad.note
    assert judge(row("int8", 100.0, delta=float("nan")), t).status == "WARN"

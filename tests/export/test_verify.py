from __future__ import annotations

import numpy as np

from prodseg.export.config import Thresholds
from prodseg.export.verify import VerifyRow, judge, max_abs_diff


def test_max_abs_diff_by_name_then_position():
    ref = {"logits": np.zeros((1, 2)), "b": np.ones((1, 2))}
    assert max_abs_diff({"b": np.full((1, 2), 1.5), "logits": np.zeros((1, 2))}, ref) == 0.5
    assert max_abs_diff({"x": np.full((1, 2), 0.25), "y": np.ones((1, 2))}, ref) == 0.25


def row(precision, agreement=1.0, delta=0.0):
    return VerifyRow("a", "p", precision, "onnxruntime", 1.0, 0.0, agreement, 0.5, 0.5 + delta, delta, 1.0)


def test_thresholds_per_precision_on_fractions():
    t = Thresholds()
    assert judge(row("fp32", 0.9995), t).status == "ok"
    assert judge(row("fp32", 0.998), t).status == "WARN"
    assert judge(row("fp16", 0.996), t).status == "ok"
    bad = judge(row("fp16", 0.994), t)
    assert bad.status == "WARN" and bad.note == "agreement 99.400% < 99.5%"
    assert judge(row("int8", 0.90, delta=0.009), t).status == "ok"
    bad = judge(row("int8", 1.0, delta=0.012), t)
    assert bad.status == "WARN" and bad.note == "ΔmIoU 1.20 > 1 points"
    assert judge(row("int8", 1.0, delta=float("nan")), t).status == "WARN"

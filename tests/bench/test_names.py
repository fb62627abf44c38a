"""Model labels: parent folder and file name, lengthened until unique; --label checked."""

from __future__ import annotations

import pytest

from prodseg.bench.names import model_labels
from prodseg.errors import BadInput


def test_two_exports_of_the_same_file_name_are_told_apart(tmp_path) -> None:
    a, b = tmp_path / "exp_a" / "model.onnx", tmp_path / "exp_b" / "model.onnx"
    assert model_labels([str(a), str(b)]) == ["exp_a/model.onnx", "exp_b/model.onnx"]
    deep = [tmp_path / "x" / "export" / "model.onnx", tmp_path / "y" / "export" / "model.onnx"]
    assert model_labels([str(p) for p in deep]) == ["x/export/model.onnx", "y/export/model.onnx"]
    assert model_labels(["m.onnx", "m.onnx"]) == ["m.onnx", "m.onnx #2"]


def test_given_labels_are_one_per_model_and_unique() -> None:
    assert model_labels(["a.onnx", "b.xml"], ["fp32", "int8"]) == ["fp32", "int8"]
    with pytest.raises(BadInput, match="given 1 time"):
        model_labels(["a.onnx", "b.xml"], ["fp32"])
    with pytest.raises(BadInput, match="labels must differ"):
        model_labels(["a.onnx", "b.xml"], ["x", "x"])

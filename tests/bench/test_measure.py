"""bench.measure helpers that need no model: the precision a row reports."""

from __future__ import annotations

import pytest

from prodseg.bench.measure import computed_precision


@pytest.mark.parametrize(
    ("artifact", "runtime", "want"),
    [
        ("fp32", {"inference_precision": "bfloat16"}, "fp32->bf16"),  # OpenVINO on a CPU with native bf16
        ("fp32", {"inference_precision": "f32"}, "fp32"),
        ("fp32", {"inference_precision": "float32"}, "fp32"),
        ("fp16", {"inference_precision": "f16"}, "fp16"),
        ("fp16", {"inference_precision": "bfloat16"}, "fp16->bf16"),
        ("int8", {"inference_precision": "bfloat16"}, "int8"),  # quantized layers keep their own name
        ("fp32", {}, "fp32"),  # ONNX Runtime, TensorRT: no such setting
        ("fp32", {"inference_precision": "dynamic"}, "fp32"),  # a value prodseg has no name for
    ],
)
def test_rows_name_the_precision_the_backend_computes_in(artifact: str, runtime: dict, want: str) -> None:
    assert computed_precision(artifact, runtime) == want

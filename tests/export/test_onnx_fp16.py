from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from prodseg.export.onnx_fp16 import convert_fp16
from prodseg.metadata import ArtifactMetadata

pytestmark = pytest.mark.slow


def test_fp16_graph_keeps_float32_io_and_agrees(tmp_path, exported_onnx):
    fp32, source = exported_onnx
    path = convert_fp16(fp32, tmp_path / "model_fp16.onnx", source.meta)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    f16 = onnx.TensorProto.FLOAT16
    assert sum(t.data_type == f16 for t in model.graph.initializer) > 10
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta = ArtifactMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.precision == "fp16" and meta.class_names == source.meta.class_names
    assert path.stat().st_size < 0.6 * fp32.stat().st_size
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    run = {
        p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
        for p in (fp32, path)
    }
    a, b = run[fp32], run[path]
    scale = float(np.abs(a).max())
    assert float(np.abs(a - b).max()) <= 1e-2 * scale
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99

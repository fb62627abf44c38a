from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from prodseg.errors import BadInput
from prodseg.export.onnx_fp32 import export_onnx
from prodseg.export.source import load_source
from prodseg.metadata import ArtifactMetadata
from tests.export.conftest import make_checkpoint

pytestmark = pytest.mark.slow


def test_onnx_is_checked_loadable_and_matches_torch(exported_onnx):
    path, source = exported_onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    meta = ArtifactMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta == source.meta
    assert meta.arch == "deeplabv3plus" and meta.input_size == [64, 64] and meta.precision == "fp32"
    assert len(meta.source_checkpoint_sha256) == 64 and meta.num_classes == 10
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["images"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    (got,) = sess.run(None, {"images": x})
    with torch.no_grad():
        ref = source.export_module()(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 10, 64, 64)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)


def test_dynamic_batch(tmp_path, exported_onnx):
    _, source = exported_onnx
    path = export_onnx(source, tmp_path / "model.onnx", dynamic_batch=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(sess.get_inputs()[0].shape[0], str)
    (out,) = sess.run(None, {"images": np.zeros((2, 3, 64, 64), np.float32)})
    assert out.shape == (2, 10, 64, 64)


def test_failed_export_leaves_nothing(tmp_path, exported_onnx, monkeypatch):
    _, source = exported_onnx

    def broken(*a, **k):
        raise RuntimeError("injected checker failure")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(RuntimeError, match="injected"):
        export_onnx(source, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_unknown_arch_is_bad_input(tmp_path):
    path = make_checkpoint(tmp_path / "x.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["model"]["architecture"] = "segformer"
    torch.save(ckpt, path)
    with pytest.raises(BadInput, match="segformer"):
        load_source(path)


def test_yolo_exports_both_outputs(tmp_path):
    pytest.importorskip("prodseg.train.models.yolo", reason="YOLOv8-seg model not available yet")
    source = load_source(make_checkpoint(tmp_path / "y.pt", arch="yolov8_seg"))
    path = export_onnx(source, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["output0", "output1"]
    out0, out1 = sess.run(None, {"images": np.zeros((1, 3, 64, 64), np.float32)})
    assert out0.shape[:2] == (1, 4 + 9 + 32) and out1.shape == (1, 32, 16, 16)
    assert (
        ArtifactMetadata.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props}).output_kind
        == "yolo_seg"
    )

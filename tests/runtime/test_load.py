"""load(): backend choice, metadata sources, bad artifacts, and no torch on the edge path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import prodseg.runtime as rt
from prodseg.errors import BadInput


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        rt.load(tmp_path / "nope.onnx")
    odd = tmp_path / "model.tflite"
    odd.write_bytes(b"x")
    with pytest.raises(BadInput, match=r"unknown artifact type '.tflite'.*\.onnx"):
        rt.load(odd)
    with pytest.raises(BadInput, match="choose one of auto, onnxruntime, openvino, tensorrt, torch"):
        rt.load(odd, backend="tflite")


def test_corrupt_onnx_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BadInput, match="broken.onnx: (ONNX Runtime|OpenVINO) cannot load this model"):
        rt.load(bad)


@pytest.mark.slow
def test_onnx_without_metadata_is_rejected(deeplab, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(deeplab[0]))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(BadInput, match="has no prodseg metadata; describe the model with --task"):
        rt.load(bare)


@pytest.mark.slow
def test_metadata_input_size_must_match_model(deeplab, tmp_path: Path) -> None:
    import onnx

    from prodseg.metadata import ArtifactMetadata

    model = onnx.load(str(deeplab[0]))
    props = {p.key: p.value for p in model.metadata_props}
    meta = ArtifactMetadata.from_props(props)
    meta.input_size = [128, 128]
    del model.metadata_props[:]
    for k, v in meta.to_props().items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    with pytest.raises(BadInput, match="takes 64x96 inputs but its metadata says 128x128"):
        rt.load(wrong)


@pytest.mark.slow
def test_ultralytics_export_loads_from_its_own_metadata(yolo_ultralytics, yolo, shelf_frame) -> None:
    ours, theirs = rt.load(yolo[0]), rt.load(yolo_ultralytics)
    assert theirs.meta.output_kind == "yolo_seg" and theirs.meta.resize == "letterbox"
    assert theirs.meta.class_names[0] == "background" and theirs.meta.class_names[1] == "shelf"
    assert theirs.meta.input_size == [128, 128] and theirs.meta.std == [1.0, 1.0, 1.0]
    theirs.meta.confidence_threshold = ours.meta.confidence_threshold
    theirs.meta.iou_threshold = ours.meta.iou_threshold
    a, b = ours.predict(shelf_frame), theirs.predict(shelf_frame)
    assert np.array_equal(a.label_map, b.label_map) and len(a.instances) == len(b.instances) > 0


@pytest.mark.slow
def test_openvino_ir_agrees_with_onnxruntime(deeplab, deeplab_ir, shelf_frame) -> None:
    ort = rt.load(deeplab[0], backend="onnxruntime", threads=1)
    ov = rt.load(deeplab_ir, threads=1, inference_precision="f32")
    assert (ort.backend, ov.backend) == ("onnxruntime", "openvino")
    feed, _ = ort.preprocess(shelf_frame)
    a, b = ort.infer(feed), ov.infer(feed)
    np.testing.assert_allclose(next(iter(a.values())), next(iter(b.values())), atol=1e-3)
    assert (ort.predict(shelf_frame).label_map == ov.predict(shelf_frame).label_map).mean() > 0.999
    assert ov.runner.last_inference_time() > 0


def test_openvino_ir_needs_sidecar(deeplab_ir, tmp_path: Path) -> None:
    xml = tmp_path / "m.xml"
    xml.write_bytes(deeplab_ir.read_bytes())
    (tmp_path / "m.bin").write_bytes(deeplab_ir.with_suffix(".bin").read_bytes())
    with pytest.raises(BadInput, match="has no prodseg metadata"):
        rt.load(xml)
    (tmp_path / "m.json").write_text(json.dumps({"arch": "x"}))
    with pytest.raises(BadInput, match="lacks class_names"):
        rt.load(xml)


@pytest.mark.slow
def test_runtime_import_and_onnx_load_leave_torch_out(deeplab) -> None:
    code = (
        "import sys, numpy as np, prodseg.runtime as rt, prodseg.runtime.pipeline, prodseg.runtime.cli\n"
        f"p = rt.load({str(deeplab[0])!r})\n"
        "p.predict(np.zeros((40, 50, 3), np.uint8))\n"
        "bad = [m for m in ('torch', 'prodseg.train', 'prodseg.export') if m in sys.modules]\n"
        "print('LEAKED', bad) if bad else print('CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CLEAN", out.stdout + out.stderr


def test_predict_rejects_non_images(deeplab) -> None:
    pred = rt.load(deeplab[0])
    with pytest.raises(BadInput, match=r"expected an \(H, W, 3\) uint8 image"):
        pred.predict(np.zeros((10, 10), np.float32))

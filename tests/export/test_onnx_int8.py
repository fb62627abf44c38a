from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from prodseg.data.layout import ShelfDataset
from prodseg.export.calibration import CalibrationSet
from prodseg.export.onnx_int8 import head_nodes, quantize_int8
from prodseg.metadata import ArtifactMetadata


def conv(name, x, w, y):
    return helper.make_node("Conv", [x, w], [y], name=name)


def test_head_nodes_walk_back_to_the_last_conv():
    nodes = [
        conv("c1", "x", "w1", "a"),
        conv("c2", "a", "w2", "b"),
        helper.make_node("Sigmoid", ["b"], ["s"], name="sig"),
        helper.make_node("Concat", ["s", "a"], ["y"], name="cat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    # Concat reaches c1 directly and c2 through the sigmoid: both convs stop the walk.
    assert sorted(head_nodes(helper.make_model(graph))) == ["c1", "c2", "cat", "sig"]


def preprocess(meta):
    import cv2

    mean, std = np.array(meta.mean, np.float32), np.array(meta.std, np.float32)

    def run(rgb):
        x = (cv2.resize(rgb, (64, 64)).astype(np.float32) / 255 - mean) / std
        return {"images": np.ascontiguousarray(x.transpose(2, 0, 1)[None])}

    return run


@pytest.mark.slow
def test_int8_qdq_and_calibration_cache_reuse(tmp_path, exported_onnx, tiny_dataset):
    fp32, source = exported_onnx
    images = [ShelfDataset(tiny_dataset).sample(s).image for s in ShelfDataset(tiny_dataset).stems[:4]]
    calib = CalibrationSet(images, preprocess(source.meta))
    res = quantize_int8(fp32, tmp_path / "model_int8.onnx", calib, source.meta)
    assert not res.reused_cache and calib.preprocessed == 4 and res.cache.is_file()
    model = onnx.load(str(res.path))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    meta = ArtifactMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.precision == "int8" and meta.extra["calib_images"] == 4
    # The classifier conv stays float: its weight is still a float initializer, not a DequantizeLinear.
    classifier = next(n for n in model.graph.node if n.name == "/segmentation_head/segmentation_head.0/Conv")
    floats = {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    assert classifier.input[1] in floats
    (out,) = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"]).run(
        None, preprocess(source.meta)(np.zeros((64, 64, 3), np.uint8))
    )
    assert out.shape == (1, 10, 64, 64) and np.isfinite(out).all()

    stamp = res.cache.stat().st_mtime_ns
    again = CalibrationSet(images, preprocess(source.meta))
    res2 = quantize_int8(fp32, tmp_path / "model_int8.onnx", again, source.meta)
    assert res2.reused_cache and again.preprocessed == 0
    assert res2.cache == res.cache and res.cache.stat().st_mtime_ns == stamp


def test_cache_key_follows_model_images_and_method(tiny_dataset):
    ds = ShelfDataset(tiny_dataset)
    images = [ds.sample(s).image for s in ds.stems[:4]]
    key = CalibrationSet(images, lambda rgb: {}).cache_key("m", "minmax")
    assert key == CalibrationSet(list(images), lambda rgb: {}).cache_key("m", "minmax")
    assert key != CalibrationSet(images[:3], lambda rgb: {}).cache_key("m", "minmax")
    assert key != CalibrationSet(images, lambda rgb: {}).cache_key("m2", "minmax")
    assert key != CalibrationSet(images, lambda rgb: {}).cache_key("m", "entropy")


def test_chunked_reader_reads_every_image_once(tiny_dataset):
    from prodseg.export.calibration import ort_reader

    ds = ShelfDataset(tiny_dataset)
    calib = CalibrationSet([ds.sample(s).image for s in ds.stems], lambda rgb: {"images": rgb[None]})
    assert calib.chunk() == 12 and calib.chunk(5) == 4 and calib.chunk(1) == 1
    assert CalibrationSet([tiny_dataset] * 19, lambda rgb: {}).chunk() == 1
    reader, seen = ort_reader(calib), []
    for start in range(0, 12, 4):
        reader.set_range(start_index=start, end_index=start + 4)
        while (feed := reader.get_next()) is not None:
            seen.append(feed["images"].shape)
    assert len(seen) == 12 and calib.preprocessed == 12


def zero_points(model) -> list[tuple[str, int, np.ndarray]]:
    """(node, zero point element type, values) of every QuantizeLinear/DequantizeLinear."""
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[node.input[2]]  # ONNX Runtime always writes the zero point
            out.append((node.name, zp.data_type, onnx.numpy_helper.to_array(zp)))
    return out


@pytest.mark.slow
def test_tensorrt_int8_onnx_is_symmetric_and_agrees_like_the_cpu_one(tmp_path, varied_onnx, tiny_dataset):
    """The TensorRT INT8 source: int8 zero points 0 only, no int32 bias; same ranges as the CPU INT8 ONNX
    (one calibration), which stays asymmetric u8; ONNX Runtime runs it and it passes the INT8 gate."""
    from prodseg.classes import ClassMatch
    from prodseg.export.artifacts import Artifact
    from prodseg.export.config import Thresholds
    from prodseg.export.images import verification_samples
    from prodseg.export.verify import TorchReference, verify_artifact

    fp32, source = varied_onnx
    ds = ShelfDataset(tiny_dataset)
    samples = verification_samples(tiny_dataset, 4)
    held = {s.stem for s in samples}
    calib = CalibrationSet([ds.sample(s).image for s in ds.stems if s not in held], preprocess(source.meta))
    u8 = quantize_int8(fp32, tmp_path / "model_int8.onnx", calib, source.meta)
    first_u8 = u8.path.read_bytes()
    s8 = quantize_int8(
        fp32, tmp_path / "model_int8_trt.onnx", calib, source.meta, activations="int8-symmetric"
    )
    assert s8.reused_cache and s8.cache == u8.cache and calib.preprocessed == len(calib)

    model = onnx.load(str(s8.path))
    onnx.checker.check_model(model, full_check=True)
    zps = zero_points(model)
    assert len(zps) > 20
    assert all(dtype == TensorProto.INT8 and not values.any() for _, dtype, values in zps), zps
    meta = ArtifactMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.precision == "int8" and meta.extra["activations"] == "int8-symmetric"

    # The CPU INT8 ONNX: still u8 asymmetric activations with int32 biases, and byte-for-byte what it
    # was, though it now reads the ranges through the cache the symmetric one shared.
    cpu = zero_points(onnx.load(str(u8.path)))
    assert {TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32} == {dtype for _, dtype, _ in cpu}
    assert any(dtype == TensorProto.UINT8 and values.any() for _, dtype, values in cpu)
    again = quantize_int8(fp32, tmp_path / "model_int8.onnx", calib, source.meta)
    assert again.reused_cache and again.path.read_bytes() == first_u8

    ref = TorchReference(source)
    try:
        rows = {
            name: verify_artifact(Artifact(name, path, "int8"), samples, ref, Thresholds(), ClassMatch(None))
            for name, path in (("cpu", u8.path), ("trt", s8.path))
        }
    finally:
        ref.close()
    assert rows["trt"].status == "ok", rows["trt"]  # the INT8 gate: ΔmIoU within one point
    # labels vary here (several classes per map): agreement with PyTorch as close as the CPU INT8 model's
    assert rows["trt"].agreement >= rows["cpu"].agreement - 0.03, rows
    assert rows["trt"].agreement > 0.9, rows

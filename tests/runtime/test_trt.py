"""TensorRT runner: MissingExtra without TensorRT; on a GPU, an engine built from ONNX agrees with ORT."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import prodseg.runtime as rt
from prodseg.errors import MissingExtra


def _has_tensorrt() -> bool:
    try:
        import tensorrt

        return hasattr(tensorrt, "Runtime") and importlib.util.find_spec("cuda.bindings") is not None
    except ImportError:
        return False


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed: the missing-extra path cannot be shown")
def test_engine_without_tensorrt_names_the_extra(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 16)
    with pytest.raises(MissingExtra, match=r"prodseg\[tensorrt\]"):
        rt.load(engine)


def _build_engine(onnx_path: Path, out: Path) -> Path:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    blob = builder.build_serialized_network(network, builder.create_builder_config())
    out.write_bytes(bytes(blob))
    return out


@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt(), reason="needs TensorRT, cuda-python and an NVIDIA GPU")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engine_agrees_with_onnxruntime(deeplab, shelf_frame, tmp_path: Path, cuda_graph: bool) -> None:
    from prodseg.metadata import ArtifactMetadata, write_sidecar

    engine = _build_engine(deeplab[0], tmp_path / "model.engine")
    ort = rt.load(deeplab[0])
    write_sidecar(engine, ort.meta)
    trt_pred = rt.load(engine, device="cuda", cuda_graph=cuda_graph)
    assert trt_pred.backend == "tensorrt" and isinstance(trt_pred.meta, ArtifactMetadata)
    feed, _ = ort.preprocess(shelf_frame)
    for _ in range(2):  # the second call replays the CUDA graph
        a, b = ort.infer(feed), trt_pred.infer(feed)
        np.testing.assert_allclose(next(iter(a.values())), next(iter(b.values())), atol=1e-2)
    assert trt_pred.runner.last_inference_time() > 0
    trt_pred.close()

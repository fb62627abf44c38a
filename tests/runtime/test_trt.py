"""TensorRT runner: MissingExtra without TensorRT; its GPU selected per thread; on a GPU, an engine built from
ONNX agrees with ORT."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

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
    ort = rt.load(deeplab[0], backend="onnxruntime")
    write_sidecar(engine, ort.meta)
    trt_pred = rt.load(engine, device="cuda", cuda_graph=cuda_graph)
    assert trt_pred.backend == "tensorrt" and isinstance(trt_pred.meta, ArtifactMetadata)
    feed, _ = ort.preprocess(shelf_frame)
    for _ in range(2):  # the second call replays the CUDA graph
        a, b = ort.infer(feed), trt_pred.infer(feed)
        np.testing.assert_allclose(next(iter(a.values())), next(iter(b.values())), atol=1e-2)
    assert trt_pred.runner.last_inference_time() > 0
    trt_pred.close()


class _CudaRuntime:
    """Stands in for cuda.bindings.runtime (no CUDA device here): records cudaSetDevice by thread."""

    def __init__(self) -> None:
        self.set_device: list[tuple[int, int]] = []

    def cudaSetDevice(self, index: int) -> tuple[int]:  # noqa: N802 - the CUDA runtime's name
        self.set_device.append((threading.get_ident(), index))
        return (0,)


def _trt_module_with_stand_ins(monkeypatch, request) -> Any:
    """prodseg.runtime.runners.trt imported over a stand-in `tensorrt` (which cannot be installed here) and,
    where cuda-python is absent, a stand-in `cuda.bindings.runtime`; removed again after the test."""
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(Runtime=object))
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        runtime = types.ModuleType("cuda.bindings.runtime")
        for name, module in [("cuda", types.ModuleType("cuda")), ("cuda.bindings", types.ModuleType("x"))]:
            monkeypatch.setitem(sys.modules, name, module)
        sys.modules["cuda.bindings"].runtime = runtime  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    import prodseg.runtime.runners as runners

    name = "prodseg.runtime.runners.trt"
    assert name not in sys.modules  # the real module cannot import here (no TensorRT)
    module = importlib.import_module(name)
    request.addfinalizer(lambda: sys.modules.pop(name, None))  # the next import is the real one again
    monkeypatch.setattr(runners, "trt", module, raising=False)  # and the package attribute goes with it
    return module


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed: the GPU test covers the real runner")
def test_engine_runner_selects_its_gpu_in_the_thread_that_infers(
    monkeypatch, request, tmp_path: Path
) -> None:
    """CUDA's current device is per thread: an engine on cuda:1 loaded in one thread and run from another
    (the pipeline's inference thread) must call cudaSetDevice(1) there, once. Stand-ins for TensorRT and the
    CUDA runtime; the runner's own thread handling is real."""
    trt_module = _trt_module_with_stand_ins(monkeypatch, request)
    runner = trt_module.TensorRTRunner(str(tmp_path / "m.engine"), device="cuda:1")
    cuda = _CudaRuntime()
    runner.cudart, runner._index, runner.is_active = cuda, 1, True
    runner.infer_impl = lambda feed: {}
    worker = threading.Thread(target=lambda: [runner.infer({}) for _ in range(3)])
    worker.start()
    worker.join()
    assert cuda.set_device == [(worker.ident, 1)]

"""Runtime on the test device (PRODSEG_TEST_DEVICE, default cuda; tests/gpu_device.py): ONNX Runtime's CUDA
provider, and the TensorRT runner's cuda-python plumbing around a stand-in engine.

TensorRT cannot be installed everywhere these tests must run, so the engine is a stand-in (an identity
network: its one layer copies the input tensor to the output on the runner's stream). With `cuda` the
copies, buffers, stream and CUDA graphs are real cuda-python calls on a GPU; with `cpu` cuda-python itself
is replaced by a host-memory stand-in that checks every copy stays inside an allocated buffer.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import prodseg.runtime as rt
from prodseg.errors import BadInput
from tests.gpu_device import DEVICE, ON_CPU

# engines run on CUDA devices only: on the CPU the host stand-in for cuda-python plays cuda:0
TRT_DEVICE = "cuda" if ON_CPU else DEVICE

pytestmark = pytest.mark.gpu

TRT_MODULE = "prodseg.runtime.runners.trt"
IDENTITY_BLOB = b"stand-in identity engine"


def _check(result: tuple) -> Any:
    err, *values = result
    assert int(err) == 0, f"CUDA call failed: {err}"
    return values[0] if values else None


class StandInContext:
    """An IExecutionContext of the identity engine: `logits` = `images`, copied device to device."""

    def __init__(self, cudart: Any):
        self.cudart, self.shape, self.addresses, self.enqueues = cudart, (), {}, 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = tuple(shape)
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shape

    def execute_async_v3(self, stream: int) -> bool:
        nbytes = int(np.prod(self.shape)) * 4
        d2d = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        src, dst = self.addresses["images"], self.addresses["logits"]
        _check(self.cudart.cudaMemcpyAsync(dst, src, nbytes, d2d, stream))
        self.enqueues += 1
        return True


class StandInEngine:
    """An ICudaEngine with a dynamic float32 input `images` (N, 3, H, W) and output `logits` of its shape."""

    num_io_tensors = 2

    def __init__(self, cudart: Any, modes: Any):
        self.cudart, self.modes, self.contexts = cudart, modes, []

    def get_tensor_name(self, index: int) -> str:
        return ("images", "logits")[index]

    def get_tensor_mode(self, name: str) -> Any:
        return self.modes.INPUT if name == "images" else self.modes.OUTPUT

    def get_tensor_dtype(self, name: str) -> str:
        return "float32"

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, 3, -1, -1)

    def create_execution_context(self) -> StandInContext:
        self.contexts.append(StandInContext(self.cudart))
        return self.contexts[-1]


def stand_in_tensorrt(cudart: Any) -> types.ModuleType:
    """The part of the `tensorrt` module the runner uses; deserializes IDENTITY_BLOB only (else None,
    as TensorRT does for an engine from another version)."""
    modes = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")

    class Logger:
        WARNING = 2

        def __init__(self, level: int = 2) -> None:
            self.level = level

    class Runtime:
        def __init__(self, logger: Logger):
            self.logger = logger

        def deserialize_cuda_engine(self, blob: bytes) -> StandInEngine | None:
            return StandInEngine(cudart, modes) if blob == IDENTITY_BLOB else None

    trt = types.ModuleType("tensorrt")
    vars(trt).update(
        TensorIOMode=modes,
        Logger=Logger,
        Runtime=Runtime,
        nptype=np.dtype,
        ICudaEngine=StandInEngine,
        IExecutionContext=StandInContext,
        Dims=tuple,
    )
    return trt


class HostCudart:
    """The cuda-python runtime calls the runner makes, on host memory (the stand-in for a CUDA device):
    buffers are numpy arrays, a stream runs work at once, a capture records it and a graph launch replays
    it. A copy outside an allocated buffer, a double free or an unfinished capture fails the test."""

    cudaMemcpyKind = types.SimpleNamespace(
        cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2, cudaMemcpyDeviceToDevice=3
    )
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0)

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}
        self.capture: list | None = None
        self.graphs, self.streams, self.captured = 0, 0, 0

    def _device(self, ptr: int, nbytes: int) -> None:
        inside = any(p <= ptr and ptr + nbytes <= p + b.nbytes for p, b in self.buffers.items())
        assert inside, f"a {nbytes}-byte copy at {ptr:#x} leaves every allocated device buffer"

    def cudaSetDevice(self, index: int) -> tuple:
        return (0,)

    def cudaMalloc(self, nbytes: int) -> tuple:
        buf = np.empty(nbytes, np.uint8)
        self.buffers[buf.ctypes.data] = buf
        return 0, buf.ctypes.data

    def cudaFree(self, ptr: int) -> tuple:
        assert self.buffers.pop(ptr, None) is not None, f"cudaFree of {ptr:#x}, which is not allocated"
        return (0,)

    def cudaStreamCreate(self) -> tuple:
        self.streams += 1
        return 0, 0x5157

    def cudaStreamDestroy(self, stream: int) -> tuple:
        self.streams -= 1
        return (0,)

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> tuple:
        if kind in (1, 3):
            self._device(dst, nbytes)
        if kind in (2, 3):
            self._device(src, nbytes)
        op = lambda: ctypes.memmove(dst, src, nbytes)  # noqa: E731
        self.capture.append(op) if self.capture is not None else op()
        return (0,)

    def cudaStreamBeginCapture(self, stream: int, mode: int) -> tuple:
        assert self.capture is None, "a capture began inside another"
        self.capture = []
        return (0,)

    def cudaStreamEndCapture(self, stream: int) -> tuple:
        graph, self.capture = self.capture, None
        self.captured += 1
        return 0, graph

    def cudaGraphInstantiate(self, graph: list, flags: int) -> tuple:
        self.graphs += 1
        return 0, list(graph)

    def cudaGraphDestroy(self, graph: list) -> tuple:
        self.captured -= 1
        return (0,)

    def cudaGraphLaunch(self, graph_exec: list, stream: int) -> tuple:
        assert self.capture is None, "a graph launched while capturing"
        for op in graph_exec:
            op()
        return (0,)

    def cudaGraphExecDestroy(self, graph_exec: list) -> tuple:
        self.graphs -= 1
        return (0,)

    def cudaStreamSynchronize(self, stream: int) -> tuple:
        assert self.capture is None, "synchronized a stream that is still capturing"
        return (0,)


def _real_cudart() -> Any:
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        pytest.skip(f"PRODSEG_TEST_DEVICE={DEVICE}: needs cuda-python (pip install 'prodseg[tensorrt]')")
    from cuda.bindings import runtime as cudart

    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or not count:
        why = getattr(err, "name", err) if int(err) else "0 devices"
        pytest.skip(f"PRODSEG_TEST_DEVICE={DEVICE}: cuda-python finds no CUDA device ({why})")
    return cudart


@pytest.fixture
def trt_runner(monkeypatch: pytest.MonkeyPatch) -> Any:
    """(the runner module imported over a stand-in tensorrt, the cudart it drives: real on cuda, host on
    cpu)."""
    cudart = HostCudart() if ON_CPU else _real_cudart()
    if ON_CPU:
        bindings = types.ModuleType("cuda.bindings")
        vars(bindings)["runtime"] = cudart
        monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt(cudart))
    sys.modules.pop(TRT_MODULE, None)
    try:
        module = importlib.import_module(TRT_MODULE)
        assert module.cudart is cudart
        yield module, cudart
    finally:  # the next import of the runner must see the real (or missing) tensorrt again
        sys.modules.pop(TRT_MODULE, None)
        monkeypatch.delattr(sys.modules["prodseg.runtime.runners"], "trt", raising=False)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_tensorrt_runner_moves_tensors_through_the_device(
    trt_runner, tmp_path: Path, cuda_graph: bool
) -> None:
    """Inputs of changing shapes go host -> device -> engine -> host unchanged; with CUDA graphs each new
    shape is enqueued once, captured once and replayed, a repeated shape only replayed."""
    module, cudart = trt_runner
    engine = tmp_path / "identity.engine"
    engine.write_bytes(IDENTITY_BLOB)
    runner = module.TensorRTRunner(str(engine), device=TRT_DEVICE, cuda_graph=cuda_graph)
    rng = np.random.default_rng(0)
    with runner:
        assert runner.input_metadata == {"images": (("?", 3, "?", "?"), np.float32)}
        assert runner.output_names == ["logits"] and runner.output_shapes == [("?", 3, "?", "?")]
        for shape in [(1, 3, 8, 8), (1, 3, 8, 8), (2, 3, 16, 8), (1, 3, 4, 4)]:
            x = rng.standard_normal(shape).astype(np.float32)
            out = runner.infer({"images": x})
            np.testing.assert_array_equal(out["logits"], x)
        (context,) = runner.engine.contexts
        assert context.enqueues == (6 if cuda_graph else 4)  # 3 new shapes x (warm-up + capture) vs 4
    if ON_CPU:
        assert cudart.buffers == {} and cudart.graphs == 0 and cudart.streams == 0, "deactivate leaks"
        assert cudart.captured == 0, "a captured graph was not destroyed after instantiation"


def test_tensorrt_runner_refuses_an_engine_it_cannot_deserialize(trt_runner, tmp_path: Path) -> None:
    module, _ = trt_runner
    engine = tmp_path / "other.engine"
    engine.write_bytes(b"built by another TensorRT")
    with pytest.raises(BadInput, match=r"other\.engine: TensorRT cannot deserialize.*--trt"):
        module.TensorRTRunner(str(engine), device=TRT_DEVICE).activate()


def test_tensorrt_runner_refuses_the_cpu(trt_runner, tmp_path: Path) -> None:
    """An engine runs on a GPU only: 'cpu' is refused instead of running on GPU 0 and reporting "cpu"."""
    module, _ = trt_runner
    engine = tmp_path / "identity.engine"
    engine.write_bytes(IDENTITY_BLOB)
    with pytest.raises(BadInput, match=r"device 'cpu' is not a CUDA device.*--device cuda"):
        module.TensorRTRunner(str(engine), device="cpu").activate()


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def test_onnxruntime_cuda_provider_agrees_with_cpu(deeplab, shelf_frame) -> None:
    """The ONNX model on DEVICE runs on the device's provider (no silent CPU fallback) and agrees with the
    CPU provider: logits to TF32 rounding, label maps on >= 99% of pixels."""
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (prodseg[onnxruntime])")
    providers = ort.get_available_providers()
    if not ON_CPU and "CUDAExecutionProvider" not in providers:
        pytest.skip(
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: "
            f"{', '.join(providers)}): pip install onnxruntime-gpu in place of onnxruntime"
        )
    ref = rt.load(deeplab[0], backend="onnxruntime", device="cpu")
    dev = rt.load(deeplab[0], backend="onnxruntime", device=DEVICE)
    want = "CPUExecutionProvider" if ON_CPU else "CUDAExecutionProvider"
    assert dev.runner.session.get_providers()[0] == want, dev.runner.session.get_providers()
    feed, _ = ref.preprocess(shelf_frame)
    a, b = next(iter(ref.infer(feed).values())), next(iter(dev.infer(feed).values()))
    np.testing.assert_allclose(a, b, atol=2e-2 * float(np.abs(a).max()), rtol=0)
    assert _agreement(ref.predict(shelf_frame).label_map, dev.predict(shelf_frame).label_map) >= 0.99
    ref.close()
    dev.close()

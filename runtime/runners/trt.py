"""TensorRT runner: a deserialized engine, I/O tensors by name, device buffers and a stream via cuda-python.

`set_tensor_address` + `execute_async_v3` (TensorRT 10/11 API). With `cuda_graph=True` the enqueue is
captured once per input shape into a CUDA graph and replayed (less launch overhead for small models).
Needs an NVIDIA GPU, `tensorrt` and `cuda-python` (`pip install 'prodseg[tensorrt]'`); type-checked here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorrt as trt  # this module is imported only when the tensorrt backend is asked for
from cuda.bindings import runtime as cudart

from prodseg.errors import BadInput
from prodseg.runtime.runners.base import Runner, RunnerOptions

if not hasattr(trt, "Runtime"):  # tensorrt-stubs' bare `tensorrt/` folder imports as an empty namespace
    raise ImportError("the tensorrt package is not installed (only its type stubs are)")


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (error, *values): raise on error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA {what} failed with error {int(err)}")
    return values[0] if len(values) == 1 else tuple(values)


class _DeviceBuffer:
    """A cudaMalloc'd region that grows on demand."""

    def __init__(self, cudart: Any):
        self.cudart, self.ptr, self.nbytes = cudart, 0, 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(_check(self.cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self.nbytes = nbytes
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            _check(self.cudart.cudaFree(self.ptr), "cudaFree")
            self.ptr, self.nbytes = 0, 0


@dataclass(frozen=True)
class TensorRTOptions(RunnerOptions):
    """cuda_graph: capture the enqueue into a CUDA graph per input shape and replay it."""

    cuda_graph: bool = False


class TensorRTRunner(Runner):
    """A serialized engine (.engine/.plan)."""

    name = "tensorrt"
    Options = TensorRTOptions
    options: TensorRTOptions

    engine: trt.ICudaEngine
    context: trt.IExecutionContext

    def activate_impl(self) -> None:
        self.cudart = cudart
        kind, _, index = self.device.partition(":")
        if kind not in ("cuda", "gpu") or not (index.isdigit() or not index):
            # 'cpu' too: an engine runs on a GPU only, and reports must not say "cpu" for a GPU run
            raise BadInput(
                f"tensorrt: device '{self.device}' is not a CUDA device; TensorRT engines run on an NVIDIA "
                "GPU: pass --device cuda or cuda:N"
            )
        self._index = int(index or 0)
        self.bind_thread_impl()  # the engine, buffers and stream belong to this device
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        with open(self.path, "rb") as fh:
            engine: trt.ICudaEngine | None = runtime.deserialize_cuda_engine(fh.read())
        if engine is None:
            raise BadInput(
                f"{self.path}: TensorRT cannot deserialize this engine (built by another TensorRT "
                "version or GPU?); rebuild it with prodseg-export --trt on this machine"
            )
        self._trt, self._runtime, self.engine = trt, runtime, engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) != trt.TensorIOMode.INPUT]
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self._buffers = {n: _DeviceBuffer(self.cudart) for n in names}
        self.stream = int(_check(self.cudart.cudaStreamCreate(), "cudaStreamCreate"))
        self._graph_exec: Any = None
        self._graph_shapes: dict[str, tuple[int, ...]] = {}

    def bind_thread_impl(self) -> None:
        """Select the engine's GPU in this thread: CUDA's current device is per thread, and a thread that
        never selected one runs on device 0 (enqueues, copies and frees go to the wrong GPU on cuda:1+)."""
        _check(self.cudart.cudaSetDevice(self._index), "cudaSetDevice")

    def deactivate_impl(self) -> None:
        self.bind_thread_impl()  # deactivate() may come from another thread than the one that activated
        if self._graph_exec is not None:
            self.cudart.cudaGraphExecDestroy(self._graph_exec)
        for buf in self._buffers.values():
            buf.free()
        self.cudart.cudaStreamDestroy(self.stream)
        del self.context, self.engine, self._runtime

    def _bind(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
        """Set input shapes and addresses, allocate outputs: (host outputs, whether shapes changed)."""
        changed = False
        for name in self._inputs:
            arr = feed[name]
            if tuple(arr.shape) != self._graph_shapes.get(name):
                changed = True
                self._graph_shapes[name] = tuple(arr.shape)
                self.context.set_input_shape(name, tuple(arr.shape))
            self.context.set_tensor_address(name, self._buffers[name].ensure(arr.nbytes))
        host: dict[str, np.ndarray] = {}
        for name in self._outputs:
            shape = _dims(self.context.get_tensor_shape(name))
            host[name] = np.empty(shape, self._dtypes[name])
            self.context.set_tensor_address(name, self._buffers[name].ensure(host[name].nbytes))
        return host, changed

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError(f"{self.path}: TensorRT execute_async_v3 failed")

    def _run_graph(self, changed: bool) -> None:
        """Capture the enqueue into a CUDA graph when shapes change, then launch the graph."""
        cudart = self.cudart
        if changed or self._graph_exec is None:
            if self._graph_exec is not None:
                cudart.cudaGraphExecDestroy(self._graph_exec)
            self._enqueue()  # TensorRT needs one ordinary launch after a shape change before capture
            mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
            _check(cudart.cudaStreamBeginCapture(self.stream, mode), "cudaStreamBeginCapture")
            self._enqueue()
            graph = _check(cudart.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
            try:
                self._graph_exec = _check(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
            finally:  # the executable graph is independent of the captured one: one graph per shape leaked
                cudart.cudaGraphDestroy(graph)
        _check(cudart.cudaGraphLaunch(self._graph_exec, self.stream), "cudaGraphLaunch")

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        feed = {n: np.ascontiguousarray(feed[n], self._dtypes[n]) for n in self._inputs}
        host, changed = self._bind(feed)
        for name, arr in feed.items():
            dst = self._buffers[name].ptr
            _check(cudart.cudaMemcpyAsync(dst, arr.ctypes.data, arr.nbytes, h2d, self.stream), "memcpy H2D")
        if self.options.cuda_graph:
            self._run_graph(changed)
        else:
            self._enqueue()
        for name, arr in host.items():
            src = self._buffers[name].ptr
            _check(cudart.cudaMemcpyAsync(arr.ctypes.data, src, arr.nbytes, d2h, self.stream), "memcpy D2H")
        _check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return host

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        meta: dict[str, tuple[tuple[int | str, ...], Any]] = {}
        for name in self._inputs:
            dims = _dims(self.engine.get_tensor_shape(name))
            meta[name] = (tuple(d if d >= 0 else "?" for d in dims), self._dtypes[name].type)
        return meta

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def output_shapes(self) -> list[tuple[int | str, ...]]:
        shapes = [_dims(self.engine.get_tensor_shape(n)) for n in self._outputs]
        return [tuple(d if d >= 0 else "?" for d in dims) for dims in shapes]


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints (Dims supports len() and indexing, not iteration in the stubs)."""
    return tuple(int(dims[i]) for i in range(len(dims)))

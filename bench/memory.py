"""Peak memory of one model run: process RSS sampled by a thread (psutil); GPU memory from torch's allocator
for checkpoints, else NVML's device-wide figure.

`resource.getrusage(...).ru_maxrss` is the process-lifetime high-water mark, so it cannot tell two
models run in one process apart; a sampling thread can, at the cost of missing spikes shorter than
its interval. We report the sampled peak and name the method in the results, and name the GPU figure's
source too: the two GPU sources measure different things.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import psutil

from prodseg.runtime.facts import MB

RSS_METHOD = "psutil-rss-sampled-{ms:g}ms"


class PeakRSS:
    """Context manager: the peak resident set size (MB = 10^6 bytes) of this process while the block runs."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_mb = 0.0
        self.peak_mb = 0.0

    @property
    def method(self) -> str:
        return RSS_METHOD.format(ms=self.interval_s * 1000)

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss / MB
        if rss > self.peak_mb:
            self.peak_mb = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakRSS:
        self.start_mb = self.peak_mb = self._proc.memory_info().rss / MB
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="prodseg-bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def gpu_memory_used_mb(device_index: int = 0) -> float | None:
    """Memory in use on an NVIDIA GPU (MB) via NVML, or None without pynvml or a GPU."""
    try:
        import pynvml  # optional: only GPU boxes have it (nvidia-ml-py)
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            return pynvml.nvmlDeviceGetMemoryInfo(handle).used / MB
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None


def cuda_index(device: str) -> int | None:
    """The GPU index of a device string (`cuda`, `cuda:1`, `gpu`), None for CPU devices."""
    name, _, idx = device.lower().partition(":")
    if name not in ("cuda", "gpu"):
        return None
    return int(idx) if idx.isdigit() else 0


TORCH_PEAK = "torch.max_memory_allocated"
NVML_USED = "nvml device-wide"


@dataclass(frozen=True)
class GpuMemory:
    """One way to measure a run's GPU memory (MB): `reset()` before the timed run, `read()` after it."""

    source: str  # named in the results: the sources measure different things
    reset: Callable[[], None]
    read: Callable[[], float | None]


def torch_peak(index: int) -> GpuMemory:
    """The peak of the tensors torch allocated on the GPU since reset(): the model's own memory, without
    the CUDA context, cuDNN workspaces or the caching allocator's reserve."""

    def reset() -> None:
        import torch  # imported when measuring: only a torch run does, and it has torch loaded

        torch.cuda.reset_peak_memory_stats(index)

    def read() -> float:
        import torch

        return float(torch.cuda.max_memory_allocated(index)) / MB

    return GpuMemory(TORCH_PEAK, reset, read)


def nvml_used(index: int) -> GpuMemory:
    """Memory in use on the whole GPU after the run (every process and context on it): the other backends
    allocate outside torch, where nothing in this process can count their share."""
    return GpuMemory(NVML_USED, lambda: None, lambda: gpu_memory_used_mb(index))


# backend -> how its GPU memory is measured; the rest read NVML.
GPU_MEMORY_SOURCES: dict[str, Callable[[int], GpuMemory]] = {"torch": torch_peak}


def gpu_memory_meter(backend: str, device: str) -> GpuMemory | None:
    """How a run of `backend` on `device` measures GPU memory; None on a CPU device."""
    index = cuda_index(device)
    if index is None:
        return None
    return GPU_MEMORY_SOURCES.get(backend, nvml_used)(index)

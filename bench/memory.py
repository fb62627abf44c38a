"""Peak memory of one model run: process RSS sampled by a thread (psutil), GPU memory through NVML.

`resource.getrusage(...).ru_maxrss` is the process-lifetime high-water mark, so it cannot tell two
models run in one process apart; a sampling thread can, at the cost of missing spikes shorter than
its interval. We report the sampled peak and name the method in the results.
"""

from __future__ import annotations

import threading
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

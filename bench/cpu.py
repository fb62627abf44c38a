"""CPU utilisation of this process over a run: (user + system CPU seconds) / wall seconds / cores."""

from __future__ import annotations

import time
from types import TracebackType

import psutil


class CpuMeter:
    """Context manager: `percent` of the whole machine (100 = every core busy) and `cores_busy`."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.cores = psutil.cpu_count(logical=True) or 1
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> CpuMeter:
        t = self._proc.cpu_times()
        self._cpu0 = t.user + t.system
        self._wall0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        t = self._proc.cpu_times()
        self.cpu_s = t.user + t.system - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0

    @property
    def cores_busy(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.cores_busy / self.cores

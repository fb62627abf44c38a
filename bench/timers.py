"""Monotonic millisecond timers (perf_counter_ns: the highest-resolution clock, never adjusted)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def now_ms() -> float:
    """Milliseconds on the monotonic high-resolution clock."""
    return time.perf_counter_ns() / 1e6


@contextmanager
def timed(into: list[float]) -> Iterator[None]:
    """Append the block's duration in milliseconds to `into` (also when it raises)."""
    start = time.perf_counter_ns()
    try:
        yield
    finally:
        into.append((time.perf_counter_ns() - start) / 1e6)


def time_call(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Call fn(*args) and return (its result, elapsed milliseconds)."""
    start = time.perf_counter_ns()
    result = fn(*args)
    return result, (time.perf_counter_ns() - start) / 1e6


class Deadline:
    """Stop condition for `--frames N` / `--duration S`: whichever is given (neither = unbounded)."""

    def __init__(self, frames: int | None = None, duration_s: float | None = None) -> None:
        self.frames = frames
        self.duration_s = duration_s
        self._start: float | None = None

    def start(self) -> None:
        self._start = time.perf_counter()

    def done(self, frames_so_far: int) -> bool:
        """True once the frame budget or the time budget is used up."""
        if self.frames is not None and frames_so_far >= self.frames:
            return True
        if self.duration_s is not None:
            if self._start is None:
                self.start()
            return time.perf_counter() - self._start >= self.duration_s  # type: ignore[operator]
        return False

"""Summary statistics of timing samples, computed once and cached (pytest-benchmark style)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cached_property
from typing import Any

SUMMARY_FIELDS = ("count", "min", "p50", "p90", "p99", "max", "mean", "stddev")


def percentile(sorted_values: tuple[float, ...], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default method)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class Stats:
    """min/p50/p90/p99/max/mean/stddev of a non-empty sample; stddev is the sample (n-1) one."""

    def __init__(self, values: Iterable[float]) -> None:
        self.values = tuple(float(v) for v in values)
        if not self.values:
            raise ValueError("Stats needs at least one sample")

    @cached_property
    def sorted(self) -> tuple[float, ...]:
        return tuple(sorted(self.values))

    @property
    def count(self) -> int:
        return len(self.values)

    @cached_property
    def min(self) -> float:
        return self.sorted[0]

    @cached_property
    def max(self) -> float:
        return self.sorted[-1]

    @cached_property
    def total(self) -> float:
        return math.fsum(self.values)

    @cached_property
    def mean(self) -> float:
        return self.total / self.count

    @cached_property
    def stddev(self) -> float:
        if self.count < 2:
            return 0.0
        return math.sqrt(math.fsum((v - self.mean) ** 2 for v in self.values) / (self.count - 1))

    @cached_property
    def p50(self) -> float:
        return percentile(self.sorted, 50)

    @cached_property
    def p90(self) -> float:
        return percentile(self.sorted, 90)

    @cached_property
    def p99(self) -> float:
        return percentile(self.sorted, 99)

    def as_dict(self) -> dict[str, Any]:
        """The summary (not the samples), rounded to microseconds for JSON."""
        return {k: (getattr(self, k) if k == "count" else round(getattr(self, k), 4)) for k in SUMMARY_FIELDS}

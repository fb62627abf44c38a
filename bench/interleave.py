"""A/B timing in alternating rounds (the benchmark tests, scripts/compare_ultralytics.py): drifting load on
a shared machine hits every candidate alike."""

from __future__ import annotations

from collections.abc import Callable

from prodseg.bench.stats import Stats


def interleaved(candidates: dict[str, Callable[[], list[float]]], rounds: int = 3) -> dict[str, Stats]:
    """Run each candidate's timing function once per round, in turn; pool each one's samples."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, measure in candidates.items():
            samples[name] += measure()
    return {name: Stats(values) for name, values in samples.items()}


def speed_ratio(fast: Stats, slow: Stats) -> float:
    """How many times faster `fast` is than `slow`, by medians (> 1: faster)."""
    return slow.p50 / fast.p50

"""Gates: absolute budgets (`--min-fps`, `--max-p99-ms`, `--max-memory-mb`) and regression vs a baseline.

Gates read the JSON form of a result (`ModelResult.as_dict()`), so a saved baseline and a fresh run
are compared field by field. A baseline recorded for other bytes or on another machine is bad input
(exit 2), not a pass or a warning: FPS measured elsewhere says nothing about this run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodseg.bench.machine import IDENTITY_KEYS, same_machine
from prodseg.bench.names import artifact_label
from prodseg.errors import BadInput

Result = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """A measured figure, where to read it in a result, and which direction is better."""

    read: Callable[[Result], float]
    higher_is_better: bool
    unit: str


METRICS: dict[str, Metric] = {
    "fps_e2e": Metric(lambda r: r["fps_e2e"], True, "FPS"),
    "fps_model": Metric(lambda r: r["fps_model"], True, "FPS"),
    "p99_ms": Metric(lambda r: r["latency_ms"]["p99"], False, "ms"),
    "peak_rss_mb": Metric(lambda r: r["memory"]["peak_rss_mb"], False, "MB"),
}
# CLI option -> the metric it bounds.
LIMIT_GATES: dict[str, str] = {"min-fps": "fps_e2e", "max-p99-ms": "p99_ms", "max-memory-mb": "peak_rss_mb"}
# Figures a baseline protects; latency tails and memory are too noisy on shared machines to compare.
REGRESSION_METRICS = ("fps_e2e", "fps_model")


@dataclass(frozen=True)
class Miss:
    gate: str
    measured: float
    limit: float
    unit: str
    where: str

    def line(self) -> str:
        m, lim, u = self.measured, self.limit, self.unit
        return f"gate {self.gate}: measured {m:.4g} {u}, limit {lim:.4g} {u} ({self.where})"


def where(result: Result) -> str:
    label = result.get("label") or artifact_label(result["artifact"])
    return f"{label} [{result['backend']}] on {Path(result['video']).name}"


def passes(metric: Metric, measured: float, limit: float) -> bool:
    return measured >= limit if metric.higher_is_better else measured <= limit


def check_limits(results: list[Result], limits: dict[str, float | None]) -> list[Miss]:
    """Every (result, absolute gate) pair whose measured value is on the wrong side of its limit."""
    misses = []
    for gate, limit in limits.items():
        if limit is None:
            continue
        metric = METRICS[LIMIT_GATES[gate]]
        for r in results:
            value = metric.read(r)
            if not passes(metric, value, limit):
                misses.append(Miss(gate, value, limit, metric.unit, where(r)))
    return misses


def check_baseline(
    results: list[Result],
    baseline: dict[str, Any],
    machine: dict[str, Any],
    max_regression: float,
    source: str = "baseline",
) -> list[Miss]:
    """Regressions beyond `max_regression` (a fraction) against the baseline entry of the same key."""
    if not 0 <= max_regression < 1:
        raise BadInput(f"--max-regression {max_regression}: must be a fraction in [0, 1), e.g. 0.10")
    if not same_machine(baseline.get("machine", {}), machine):
        theirs = {k: baseline.get("machine", {}).get(k) for k in IDENTITY_KEYS}
        ours = {k: machine.get(k) for k in IDENTITY_KEYS}
        raise BadInput(
            f"--baseline {source}: recorded on another machine ({theirs}, this is {ours}); "
            "record a baseline here with --save-baseline"
        )
    entries = {e["key"]: e for e in baseline.get("results", [])}
    misses = []
    for r in results:
        base = entries.get(r["key"])
        if base is None:
            raise BadInput(
                f"--baseline {source}: has no result for {where(r)} (sha256 {r['sha256'][:12]}, "
                f"{r['mode']} x{r['requests']}); record one with --save-baseline"
            )
        for name in REGRESSION_METRICS:
            misses += _regression(name, r, base, max_regression)
    return misses


def _regression(name: str, result: Result, base: Result, max_regression: float) -> list[Miss]:
    metric = METRICS[name]
    ref = metric.read(base)
    limit = ref * (1 - max_regression) if metric.higher_is_better else ref * (1 + max_regression)
    value = metric.read(result)
    if passes(metric, value, limit):
        return []
    ctx = f"{where(result)}; baseline {ref:.4g} {metric.unit}, max regression {max_regression:.0%}"
    return [Miss(f"regression-{name}", value, limit, metric.unit, ctx)]

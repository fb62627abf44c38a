#!/usr/bin/env python
"""Model-only latency of prodseg-bench vs OpenVINO's `benchmark_app -hint latency` on the same IR.

    .venv/bin/python scripts/compare_benchmark_app.py model.xml [--video shelf.mp4] [--seconds 10]

Both run one synchronous request back to back with the LATENCY hint, one after the other (never at
the same time), and the script prints both medians and their ratio. Exit 1 when they differ by more
than --tolerance (10 % by default).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from prodseg.bench.modelonly import collect_feeds, time_infer
from prodseg.bench.source import BoundedSource
from prodseg.bench.stats import Stats
from prodseg.bench.timers import Deadline
from prodseg.errors import BadInput, GateFailed

MEDIAN = re.compile(r"Median:\s+([0-9.]+)\s*ms")


def benchmark_app_median(ir: Path, seconds: int) -> float:
    """Median latency (ms) that `benchmark_app -hint latency` reports for the IR on CPU."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    cmd = [exe, "-m", str(ir), "-d", "CPU", "-hint", "latency", "-t", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = MEDIAN.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        tail = (proc.stdout[-400:] + proc.stderr[-400:]).strip()
        raise BadInput(f"benchmark_app failed on {ir} (exit {proc.returncode}): {tail}")
    return float(match.group(1))


def prodseg_timer(ir: Path, video: str | None) -> Callable[[float], Stats]:
    """prodseg-bench's model-only timing as a function of seconds: runtime predictor, infer() on frames."""
    from prodseg.runtime import load

    predictor = load(str(ir), backend="openvino", device="cpu")
    if video:
        feeds, _ = collect_feeds(BoundedSource(video, Deadline(frames=8)), predictor)
    else:
        rng = np.random.default_rng(0)
        feeds = [
            {
                name: rng.random([int(d) for d in shape], np.float32).astype(dtype)
                for name, (shape, dtype) in predictor.runner.input_metadata.items()
            }
        ]
    time_infer(predictor.infer, feeds, Deadline(frames=20))  # warm-up, as benchmark_app's first inference
    return lambda seconds: Stats(time_infer(predictor.infer, feeds, Deadline(duration_s=seconds)))


@click.command()
@click.argument("ir", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--video", default=None, help="Use this video's frames as input (default: random input).")
@click.option(
    "--seconds", type=click.IntRange(min=1), default=5, show_default=True, help="Per round and tool."
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Alternate the tools this many times (a shared machine's load drifts).",
)
@click.option("--tolerance", type=float, default=0.10, show_default=True)
def main(ir: Path, video: str | None, seconds: int, rounds: int, tolerance: float) -> None:
    """Print both medians (median over rounds) and their ratio; exit 1 beyond the tolerance."""
    ours_timer = prodseg_timer(ir, video)
    ours, theirs = [], []
    for i in range(rounds):
        ours.append(ours_timer(seconds).p50)
        theirs.append(benchmark_app_median(ir, seconds))
        click.echo(f"round {i + 1}: prodseg {ours[-1]:.2f} ms, benchmark_app {theirs[-1]:.2f} ms")
    a, b = statistics.median(ours), statistics.median(theirs)
    click.echo(f"prodseg-bench model-only median: {a:.2f} ms")
    click.echo(f"benchmark_app -hint latency median: {b:.2f} ms")
    click.echo(f"ratio prodseg/benchmark_app: {a / b:.3f}")
    if abs(a / b - 1) > tolerance:
        raise GateFailed(f"medians differ by {abs(a / b - 1):.1%} (> {tolerance:.0%})")


if __name__ == "__main__":
    from prodseg.cli import handle_errors

    handle_errors(main)()

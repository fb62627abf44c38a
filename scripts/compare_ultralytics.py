#!/usr/bin/env python
"""End-to-end FPS of ultralytics' `YOLO(model).predict(stream=True)` vs prodseg-bench on one video.

    .venv/bin/python scripts/compare_ultralytics.py yolov8n-seg.onnx shelf1080.mp4 --frames 300
    .venv/bin/python scripts/compare_ultralytics.py yolov8n-seg.onnx shelf1080.mp4 \\
        --theirs yolov8n-seg_openvino_model --mode throughput --requests 2

Both read the same video from disk, decode, preprocess, infer and post-process every frame (ultralytics'
own predictor with its default settings; prodseg-bench's timed pipeline, with its model-only FPS), in
alternating rounds in this one process, so load that comes and goes on a shared machine hits both.
prodseg runs MODEL; ultralytics runs --theirs (default: the same file). The script prints each round,
the median FPS of both, their ratio and prodseg's end-to-end / model-only ratio, the 1-minute load
average and the CPU's SIMD flags. Exit 1 when --min-ratio is given and not met.
Needs ultralytics (the train extra).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import click

from prodseg.bench.interleave import interleaved, speed_ratio
from prodseg.bench.machine import cpu_flags, cpu_model, load_average
from prodseg.bench.measure import MODES, BenchOptions, bench_one
from prodseg.errors import GateFailed, require


def ultralytics_round(model: str, video: str, frames: int, warmup: int) -> Callable[[], list[float]]:
    """A timing function: ms per frame of `frames` streamed predictions after `warmup` untimed ones."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    ultra = require("ultralytics", "train", "the ultralytics comparison")
    yolo = ultra.YOLO(model, task="segment")

    def run() -> list[float]:
        done, start = 0, time.perf_counter()
        while done < warmup + frames:  # the video replays until enough frames were timed
            for _ in yolo.predict(video, stream=True, verbose=False):
                done += 1
                if done == warmup:
                    start = time.perf_counter()
                if done == warmup + frames:
                    break
        return [1000 * (time.perf_counter() - start) / frames]

    run()  # the first predict() builds ultralytics' predictor (session, its own warm-up): not a round
    return run


def prodseg_round(
    model: str, video: str, opts: BenchOptions, model_fps: list[float]
) -> Callable[[], list[float]]:
    """A timing function: prodseg-bench's end-to-end ms per frame; its model-only FPS go to model_fps."""

    def run() -> list[float]:
        result = bench_one(model, video, opts)
        model_fps.append(result.fps_model)
        return [1000 / result.fps_e2e]

    return run


@click.command()
@click.argument("model")
@click.argument("video", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--theirs",
    default=None,
    help="The model ultralytics runs (default: MODEL), e.g. its OpenVINO export folder.",
)
@click.option("--frames", type=click.IntRange(min=1), default=300, show_default=True, help="Timed per round.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--backend", default="auto", show_default=True, help="prodseg's backend.")
@click.option("--mode", type=click.Choice(MODES), default="latency", show_default=True)
@click.option("--requests", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--min-ratio", type=float, default=None, help="Gate: prodseg FPS / ultralytics FPS.")
def main(
    model: str,
    video: str,
    theirs: str | None,
    frames: int,
    warmup: int,
    rounds: int,
    backend: str,
    mode: str,
    requests: int,
    threads: int | None,
    min_ratio: float | None,
) -> None:
    """Print both FPS per round, their medians and ratio; exit 1 below --min-ratio."""
    load0 = load_average()
    opts = BenchOptions(
        backend=backend, mode=mode, requests=requests, threads=threads, warmup=warmup, frames=frames
    )
    model_fps: list[float] = []
    candidates = {
        "ultralytics": ultralytics_round(theirs or model, video, frames, warmup),
        "prodseg": prodseg_round(model, video, opts, model_fps),
    }
    res = interleaved(candidates, rounds=rounds)
    for i in range(rounds):
        click.echo(
            f"round {i + 1}: ultralytics {1000 / res['ultralytics'].values[i]:.1f} FPS, prodseg "
            f"{1000 / res['prodseg'].values[i]:.1f} FPS e2e ({model_fps[i]:.1f} model-only)"
        )
    ultra_fps, ours_fps = 1000 / res["ultralytics"].p50, 1000 / res["prodseg"].p50
    ratio = speed_ratio(res["prodseg"], res["ultralytics"])
    click.echo(f"ultralytics predict ({theirs or model}): {ultra_fps:.1f} FPS")
    click.echo(
        f"prodseg-bench ({model}, {backend}, {mode}"
        f"{f' x{requests}' if mode == 'throughput' else ''}): {ours_fps:.1f} FPS e2e, "
        f"{statistics.median(model_fps):.1f} model-only"
    )
    click.echo(
        f"ratio prodseg/ultralytics: {ratio:.3f}; prodseg e2e/model-only: "
        f"{ours_fps / statistics.median(model_fps):.3f}"
    )
    click.echo(
        f"load average (1 min) {load0:.2f} before, {load_average():.2f} after; {cpu_model()} "
        f"{os.cpu_count()} cores; {' '.join(cpu_flags()) or 'no AVX2/AVX-512/AMX flags'}"
    )
    if min_ratio is not None and ratio < min_ratio:
        raise GateFailed(f"prodseg/ultralytics {ratio:.3f} < {min_ratio}")


if __name__ == "__main__":
    from prodseg.cli import handle_errors

    handle_errors(main)()

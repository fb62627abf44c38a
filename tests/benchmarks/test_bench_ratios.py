"""Regression gates that hold on a noisy shared machine: ratios of two things measured in one run.

Both sides are timed in alternating rounds (prodseg.bench.interleave), so load that comes and
goes hits both. Thresholds sit far from the measured ratios (README) and close to what a
real regression produces:
- pipeline FPS >= 0.3 x model-only FPS on the tiny 64² model: a model reloaded or recompiled per frame,
  a stage that sleeps or polls, or frames queued behind a stalled thread push the ratio to ~0.1.
  Measured 0.43 on a quiet 2-core EPYC (2026-12-01): with a 0.4 ms model the pipeline's per-frame
  thread hand-offs dominate, so this ratio is far below what real models reach.
- OpenVINO INT8 (QDQ) latency <= 1.25 x FP32: INT8 falling back to emulated/dequantised FP32 kernels
  is slower than FP32; measured here INT8 ~2x faster.
- prodseg-bench end-to-end FPS >= 0.5 x its model-only FPS on a YOLOv8n-seg (320²) and a 720p video, both
  from one bench run: decode, preprocessing and post-processing overlap inference in their own threads.
  Measured 0.65 on a quiet 2-core EPYC (load ~1, 2026-12-01) and 0.76-1.5 at load 7-11 (where more
  runnable threads also win a bigger CPU share); a model reloaded per frame or a stalled stage falls
  far below 0.5. On 2 cores decoding 720p competes with inference, which is why the quiet ratio is not
  higher (docs/guides/performance.md).
  Absolute FPS budgets belong to dedicated boxes (prodseg-bench --min-fps with a baseline there).
"""

from __future__ import annotations

import numpy as np
import pytest

from prodseg.bench.interleave import interleaved, speed_ratio
from prodseg.bench.modelonly import time_infer
from prodseg.bench.timers import Deadline
from prodseg.runtime import load
from prodseg.runtime.pipeline import run_pipeline
from prodseg.runtime.sources import open_source

MIN_PIPELINE_VS_MODEL = 0.3
MAX_INT8_VS_FP32_LATENCY = 1.25
MIN_BENCH_E2E_VS_MODEL = 0.5


def test_pipeline_keeps_up_with_model_only(benchmark, tiny_artifacts, tiny_video):
    with load(tiny_artifacts["openvino"]) as predictor:
        frames = list(open_source(tiny_video[0]))
        feeds = [predictor.preprocess(f.image, bgr=True)[0] for f in frames]
        time_infer(predictor.infer, feeds, Deadline(frames=5))

        def pipeline_ms_per_frame() -> list[float]:
            stats = run_pipeline(open_source(tiny_video[0]), predictor)
            return [1000 * stats.wall_s / stats.frames]

        def model_ms_per_frame() -> list[float]:
            return [sum(time_infer(predictor.infer, feeds, Deadline(frames=len(feeds)))) / len(feeds)]

        res = benchmark.pedantic(
            lambda: interleaved({"pipeline": pipeline_ms_per_frame, "model": model_ms_per_frame}, rounds=5),
            rounds=1,
        )
    ratio = speed_ratio(res["pipeline"], res["model"])  # pipeline FPS / model-only FPS
    benchmark.extra_info.update(
        pipeline_fps=1000 / res["pipeline"].p50, model_fps=1000 / res["model"].p50, ratio=round(ratio, 3)
    )
    assert ratio >= MIN_PIPELINE_VS_MODEL, benchmark.extra_info


@pytest.mark.slow
def test_openvino_int8_not_slower_than_fp32(benchmark, tiny_artifacts):
    feed_arr = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    # raw float NCHW feeds: normalisation stays outside the model (fuse_preprocess=False)
    with (
        load(tiny_artifacts["onnx"], backend="openvino", fuse_preprocess=False) as fp32,
        load(tiny_artifacts["int8"], backend="openvino", fuse_preprocess=False) as int8,
    ):
        assert (fp32.meta.precision, int8.meta.precision) == ("fp32", "int8")
        feeds = {name: [{p.input_name: feed_arr}] for name, p in (("fp32", fp32), ("int8", int8))}
        for name, p in (("fp32", fp32), ("int8", int8)):
            time_infer(p.infer, feeds[name], Deadline(frames=5))
        res = benchmark.pedantic(
            lambda: interleaved(
                {
                    "fp32": lambda: time_infer(fp32.infer, feeds["fp32"], Deadline(frames=15)),
                    "int8": lambda: time_infer(int8.infer, feeds["int8"], Deadline(frames=15)),
                },
                rounds=3,
            ),
            rounds=1,
        )
    benchmark.extra_info.update(
        fp32_ms=round(res["fp32"].p50, 3),
        int8_ms=round(res["int8"].p50, 3),
        int8_speedup=round(speed_ratio(res["int8"], res["fp32"]), 3),
    )
    assert res["int8"].p50 <= MAX_INT8_VS_FP32_LATENCY * res["fp32"].p50, benchmark.extra_info


@pytest.mark.slow
def test_bench_end_to_end_keeps_up_with_model_only(benchmark, yolo_pipeline_case):
    from prodseg.bench.measure import BenchOptions, bench_one

    model, video = yolo_pipeline_case
    opts = BenchOptions(frames=60, warmup=5)  # --backend auto, latency: the default command line
    result = benchmark.pedantic(lambda: bench_one(str(model), str(video), opts), rounds=1)
    ratio = result.fps_e2e / result.fps_model
    benchmark.extra_info.update(
        backend=result.backend,
        fps_e2e=round(result.fps_e2e, 1),
        fps_model=round(result.fps_model, 1),
        ratio=round(ratio, 3),
    )
    assert ratio >= MIN_BENCH_E2E_VS_MODEL, benchmark.extra_info

"""Benchmark one artifact on one video: warm-up, the timed pipelined run, model-only timing, accuracy."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodseg.bench.accuracy import GroundTruth, VideoAccuracy
from prodseg.bench.cpu import CpuMeter
from prodseg.bench.inflight import run_inflight
from prodseg.bench.memory import PeakRSS, gpu_memory_meter
from prodseg.bench.modelonly import FEED_FRAMES, collect_feeds, time_infer, time_inflight
from prodseg.bench.names import artifact_label
from prodseg.bench.requests import warm_handles
from prodseg.bench.results import ModelResult, artifact_digest
from prodseg.bench.source import BoundedSource
from prodseg.bench.stats import Stats
from prodseg.bench.timers import Deadline, now_ms
from prodseg.errors import BadInput
from prodseg.runtime.model_options import PRECISION_OPTION, ModelSpec

MODES = ("latency", "throughput")
Progress = Callable[[str, int], None]  # (phase, frames done in it)

log = logging.getLogger("prodseg.bench")


@dataclass
class BenchOptions:
    """What `prodseg-bench` measures for every (artifact, backend, video)."""

    backend: str = "auto"
    device: str = "cpu"
    threads: int | None = None
    warmup: int = 5
    frames: int | None = None
    duration_s: float | None = None
    mode: str = "latency"
    requests: int = 2
    gt_masks: Path | None = None
    gt_classes: Path | None = None  # the masks' classes.yaml when the folder has none
    class_map: dict[str, str] | None = None  # model class -> truth class, when the names differ
    spec: ModelSpec = field(default_factory=ModelSpec)  # the model flags
    precision_opts: dict[str, Any] = field(default_factory=dict)  # --precision/--channels-last
    runner_options: dict[str, Any] = field(default_factory=dict)  # backend options (the sweep's precisions)

    def runner_opts(self, backend: str) -> dict[str, Any]:
        """Runner options for a run on `backend`: a pipelined run's (PIPELINE_OPTS), --precision etc."""
        from prodseg.runtime.model_options import backend_options
        from prodseg.runtime.runners import PIPELINE_OPTS

        return {
            **PIPELINE_OPTS.get(backend, {}),
            **self.runner_options,
            **backend_options(self.precision_opts, backend),
        }

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadInput(f"--mode {self.mode}: choose one of {', '.join(MODES)}")
        if self.warmup < 0 or (self.frames is not None and self.frames < 1) or self.requests < 1:
            raise BadInput("--warmup must be >= 0, --frames and --requests >= 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise BadInput(f"--duration {self.duration_s}: must be > 0 seconds")
        if self.frames is not None and self.duration_s is not None:
            raise BadInput("give --frames or --duration, not both")

    def deadline(self) -> Deadline:
        return Deadline(self.frames, self.duration_s)


def fps_timeline(done_at_ms: list[float], bin_s: float | None = None) -> list[tuple[float, float]]:
    """(end of bin in s, frames completed in the bin / bin length) for consecutive bins of the run.

    Bins are 1 s, or a tenth of the run when it is shorter than 5 s.
    """
    if not done_at_ms:
        return []
    if bin_s is None:
        total_s = done_at_ms[-1] / 1000
        bin_s = 1.0 if total_s >= 5 else max(total_s / 10, 0.01)
    bins = [0] * max(1, math.ceil(done_at_ms[-1] / 1000 / bin_s))
    for t in done_at_ms:
        bins[min(int(t / 1000 / bin_s), len(bins) - 1)] += 1
    return [((i + 1) * bin_s, n / bin_s) for i, n in enumerate(bins)]


def per_frame_latency(stages: dict[str, list[float]]) -> list[float]:
    """Each frame's time through all stages (queue waits excluded), from per-stage lists in frame order."""
    lists = [v for v in stages.values() if v]
    n = min(len(v) for v in lists)
    return [sum(v[i] for v in lists) for i in range(n)]


def warm_up(predictor: Any, video: str, count: int) -> None:
    """Run `count` full predictions on the video's first frames (compilation, caches, allocator)."""
    if count == 0:
        return
    source = BoundedSource(video, Deadline(frames=count))
    for frame in source:
        predictor.predict_frame(frame)


def frame_hw(video: str) -> tuple[int, int]:
    """(H, W) of the video's frames."""
    from prodseg.runtime.sources import open_source

    source = open_source(video)
    try:
        return source.size[1], source.size[0]
    finally:
        source.close()


def load_for_bench(artifact: str, video: str, opts: BenchOptions) -> Any:
    """The predictor of one run: model flags, runner options, a dynamic model at the video's aspect."""
    from prodseg.runtime import check_artifact, load

    _, backend = check_artifact(artifact, opts.backend, opts.device)
    predictor = load(
        artifact,
        backend=opts.backend,
        device=opts.device,
        threads=opts.threads,
        spec=opts.spec,
        **opts.runner_opts(backend),
    )
    predictor.adapt_to(frame_hw(video))
    return predictor


def bench_one(
    artifact: str, video: str, opts: BenchOptions, progress: Progress | None = None, label: str = ""
) -> ModelResult:
    """Measure one artifact on one video; warm-up excluded from every figure."""
    from prodseg.runtime import resolve_artifact

    artifact = str(resolve_artifact(artifact))  # a folder (ultralytics' OpenVINO export) -> its .xml
    sha, size_mb = artifact_digest(artifact)
    truth = GroundTruth(opts.gt_masks, opts.gt_classes) if opts.gt_masks is not None else None
    with PeakRSS() as mem, load_for_bench(artifact, video, opts) as predictor:
        gpu = gpu_memory_meter(str(predictor.backend), opts.device)
        accuracy = video_accuracy(truth, predictor.meta.class_names, artifact, opts.class_map)
        warm_up(predictor, video, opts.warmup)
        with _handles(predictor, artifact, video, opts) as handles:
            if gpu is not None:
                gpu.reset()
            with CpuMeter() as cpu:
                run = _timed_run(predictor, handles, video, opts, truth, accuracy, progress)
            model_ms = _model_only(predictor, handles, video, opts, len(run.done_at), progress)
        choice = backend_choice(predictor, opts)  # while the runner is open: it reports its settings
        gpu_mb = gpu.read() if gpu is not None else None
    if opts.spec.save_card is not None:
        from prodseg.runtime.model_options import save_card

        save_card(opts.spec.save_card, predictor.meta, Path(artifact))
    meta = predictor.meta
    return ModelResult(
        label=label or artifact_label(artifact),
        artifact=str(artifact),
        sha256=sha,
        size_mb=size_mb,
        backend=str(predictor.backend),
        device=opts.device,
        precision=computed_precision(meta.precision, choice["backend_choice"]["runtime"]),
        arch=meta.arch,
        classes=list(meta.class_names),
        video=str(video),
        mode=opts.mode,
        requests=opts.requests if opts.mode == "throughput" else 1,
        frames=len(run.done_at),
        warmup=opts.warmup,
        wall_s=run.wall_s,
        stages={k: Stats(v) for k, v in run.stages.items() if v},
        latency=Stats(per_frame_latency(run.stages)),
        model_only=Stats(model_ms),
        peak_rss_mb=mem.peak_mb,
        rss_method=mem.method,
        cpu_percent=cpu.percent,
        cores_busy=cpu.cores_busy,
        dropped=run.dropped,
        gpu_memory_mb=gpu_mb,
        gpu_memory_source=gpu.source if gpu is not None and gpu_mb is not None else None,
        accuracy=accuracy.result() if accuracy is not None else None,
        fps_timeline=fps_timeline(run.done_at),
        settings={**predictor.settings(), **choice},
    )


def video_accuracy(
    truth: GroundTruth | None, model_names: list[str], artifact: str, class_map: dict[str, str] | None
) -> VideoAccuracy | None:
    """The accuracy accumulator in the truth's classes, matched to the model's by name."""
    if truth is None:
        return None
    names, match = truth.match(model_names, artifact, class_map)
    if match.note:
        log.info("%s", match.note)
    return VideoAccuracy(len(names), names, match)


# OpenVINO's names for the precision it computes in (its hint's, and its element types') -> prodseg's
COMPUTED = {
    **{hint: ours for ours, hint in PRECISION_OPTION["openvino"][1].items()},
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
}


def computed_precision(artifact: str, runtime: dict[str, Any]) -> str:
    """The artifact's precision, with the one the backend computes a float model in where they differ:
    'fp32->bf16' for an fp32 model that OpenVINO runs in bf16 on a CPU with native bf16."""
    ran = COMPUTED.get(str(runtime.get("inference_precision", "")))
    if ran is None or artifact not in ("fp32", "fp16") or ran == artifact:
        return artifact
    return f"{artifact}->{ran}"


def backend_choice(predictor: Any, opts: BenchOptions) -> dict[str, Any]:
    """What ran and why: --backend as given, the backend used, the reason, where preprocessing ran."""
    return {
        "backend_choice": {
            "asked": opts.backend,
            "used": str(predictor.backend),
            "why": getattr(predictor, "backend_reason", ""),
            "preprocess_in_model": bool(getattr(predictor, "fused", False)),
            "runtime": predictor.runner.effective_settings(),
        }
    }


def _model_only(
    predictor: Any,
    handles: list[Any],
    video: str,
    opts: BenchOptions,
    pipeline_frames: int,
    progress: Progress | None,
) -> list[float]:
    """infer() timings on the video's preprocessed frames: --frames/--duration, else as many as the run.

    Latency mode: each call's time. Throughput mode: the same requests as the pipelined run, all in
    flight, and the wall time between completions (so FPS = frames / wall time in both modes).
    """
    feeds, _ = collect_feeds(BoundedSource(video, Deadline(frames=FEED_FRAMES)), predictor)
    deadline = opts.deadline() if opts.frames or opts.duration_s else Deadline(frames=max(1, pipeline_frames))
    step = None if progress is None else (lambda: progress("model-only", 1))
    if handles:
        return time_inflight(handles, feeds, deadline, on_step=step)
    return time_infer(predictor.infer, feeds, deadline, on_step=step)


@dataclass
class TimedRun:
    stages: dict[str, list[float]]
    wall_s: float
    done_at: list[float]  # ms from the start when each result was delivered
    dropped: int = 0


def _handles(predictor: Any, artifact: str, video: str, opts: BenchOptions) -> Any:
    """Warmed-up inference handles for throughput mode (made before timing starts); none for latency."""
    if opts.mode != "throughput":
        return nullcontext([])
    feeds, _ = collect_feeds(BoundedSource(video, Deadline(frames=1)), predictor, count=1)
    return warm_handles(predictor, artifact, opts, feeds[0])


def _timed_run(
    predictor: Any,
    handles: list[Any],
    video: str,
    opts: BenchOptions,
    truth: GroundTruth | None,
    accuracy: VideoAccuracy | None,
    progress: Progress | None,
) -> TimedRun:
    """The pipelined run: the runtime's pipeline (latency) or several requests in flight (throughput)."""
    done_at: list[float] = []
    start = now_ms()

    def on_result(frame: Any, pred: Any) -> None:
        done_at.append(now_ms() - start)
        if accuracy is not None and (gt := truth.get(frame.index)) is not None:  # type: ignore[union-attr]
            accuracy.update(frame.index, gt, pred.label_map)
        if progress is not None:
            progress("pipeline", 1)

    source = BoundedSource(video, opts.deadline())
    if opts.mode == "throughput":
        stats = run_inflight(source, predictor, handles, on_result)
        run = TimedRun(stats.stages, stats.wall_s, done_at)
    else:
        from prodseg.runtime.pipeline import run_pipeline

        ps = run_pipeline(source, predictor, on_result=on_result)
        run = TimedRun(_pipeline_stages(ps), float(ps.wall_s), done_at, int(getattr(ps, "dropped", 0)))
    check_decoded(source, video)
    return run


def check_decoded(source: BoundedSource, video: str) -> None:
    """BadInput when the source stopped before the video's end: figures from part of a file are not a
    benchmark of it (the same check for every mode)."""
    if source.decode_error is not None:
        raise BadInput(
            f"{video}: decoding stopped at frame {source.decode_error} (corrupt or truncated); "
            "re-encode it, e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4"
        )


def _pipeline_stages(ps: Any) -> dict[str, list[float]]:
    """Per-stage ms lists of the runtime's PipelineStats.

    Its `sink` stage is only our on_result bookkeeping here (no sinks), so it is left out.
    """
    return {k: list(v) for k, v in ps.stage_ms.items() if v and k != "sink"}

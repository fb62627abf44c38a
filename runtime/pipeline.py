"""decode -> preprocess -> infer -> postprocess -> sinks, overlapped in threads joined by bounded queues.

Files: nothing is dropped and order is kept (one thread per stage, FIFO queues). Live sources: the
decoder replaces the oldest waiting frame when the first queue is full, so latency stays bounded.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from prodseg.runtime.predictor import Predictor
from prodseg.runtime.sources import Frame
from prodseg.runtime.types import Prediction

STAGES = ("decode", "preprocess", "infer", "postprocess", "sink")
_END = object()


class Sink(Protocol):
    def write(self, frame: Frame, pred: Prediction) -> None: ...


class Frames(Protocol):
    """What the pipeline reads: frames in order, whether they come live, where decoding stopped."""

    is_live: bool
    decode_error: int | None

    def __iter__(self) -> Iterator[Frame]: ...


@dataclass
class PipelineStats:
    """Frames processed, wall time, per-stage ms per frame, dropped frames, where decoding stopped."""

    frames: int = 0
    wall_s: float = 0.0
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    dropped: int = 0
    decode_error: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    decode = property(lambda self: self.stage_ms["decode"])
    preprocess = property(lambda self: self.stage_ms["preprocess"])
    infer = property(lambda self: self.stage_ms["infer"])
    postprocess = property(lambda self: self.stage_ms["postprocess"])
    sink = property(lambda self: self.stage_ms["sink"])

    def summary(self) -> dict[str, Any]:
        """Mean ms per stage plus totals, for logs and JSON."""
        means = {s: round(float(np.mean(v)), 3) if v else 0.0 for s, v in self.stage_ms.items()}
        return {
            "frames": self.frames,
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.fps, 2),
            "dropped": self.dropped,
            "decode_error": self.decode_error,
            "mean_ms": means,
        }


@dataclass
class _Job:
    frame: Frame
    data: Any = None
    ctx: Any = None
    timings: dict[str, float] = field(default_factory=dict)


class _Shared:
    """Stop flag and the first error raised in any stage."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()


def _put(q: queue.Queue, item: Any, shared: _Shared) -> None:
    while not shared.stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _put_drop_oldest(q: queue.Queue, item: Any) -> int:
    """Put without blocking; discard the oldest waiting items to make room. Returns how many were dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


def _decode(
    frames: Iterator[Frame],
    out: queue.Queue,
    stats: PipelineStats,
    shared: _Shared,
    drop: bool,
    max_frames: int | None,
) -> None:
    try:
        n = 0
        while not shared.stop.is_set() and (max_frames is None or n < max_frames):
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            stats.stage_ms["decode"].append((time.perf_counter() - t0) * 1e3)
            n += 1
            if drop:
                stats.dropped += _put_drop_oldest(out, _Job(frame))
            else:
                _put(out, _Job(frame), shared)
    except BaseException as exc:  # noqa: BLE001 - re-raised by run_pipeline in the caller's thread
        shared.fail(exc)
    finally:
        _put(out, _END, shared)  # blocking even when live: the end marker must not evict the last frame


def _jobs(inq: queue.Queue, shared: _Shared) -> Iterator[_Job]:
    """Jobs from `inq` until the end marker, or until another stage failed (checked every 0.1 s)."""
    while not shared.stop.is_set():
        try:
            job = inq.get(timeout=0.1)
        except queue.Empty:
            continue
        if job is _END:
            return
        yield job


def _stage(
    name: str,
    fn: Callable[[_Job], None],
    setup: Callable[[], None] | None,
    inq: queue.Queue,
    out: queue.Queue,
    stats: PipelineStats,
    shared: _Shared,
) -> None:
    try:
        if setup is not None:
            setup()
        for job in _jobs(inq, shared):
            t0 = time.perf_counter()
            fn(job)
            job.timings[name] = (time.perf_counter() - t0) * 1e3
            stats.stage_ms[name].append(job.timings[name])
            _put(out, job, shared)
    except BaseException as exc:  # noqa: BLE001
        shared.fail(exc)
    finally:
        _put(out, _END, shared)


StageFn = Callable[[_Job], None]


def _stage_functions(predictor: Predictor) -> list[tuple[str, StageFn, Callable[[], None] | None]]:
    """(stage, what it does per job, what its thread does first): the inference thread binds the runner
    to it (a GPU runner selects its device there: CUDA's current device is per thread)."""

    def pre(job: _Job) -> None:
        job.data, job.ctx = predictor.preprocess_frame(job.frame)

    def infer(job: _Job) -> None:
        job.data = predictor.infer(job.data)

    def post(job: _Job) -> None:
        job.data = predictor.postprocess(job.data, job.ctx)

    bind = predictor.runner.bind_thread
    return [("preprocess", pre, None), ("infer", infer, bind), ("postprocess", post, None)]


def run_pipeline(
    source: Frames,
    predictor: Predictor,
    sinks: Iterable[Sink] = (),
    queue_size: int = 4,
    drop_oldest: bool | None = None,
    max_frames: int | None = None,
    on_result: Callable[[Frame, Prediction], None] | None = None,
) -> PipelineStats:
    """Run every frame of `source` through `predictor` into `sinks` (in this thread, in frame order)."""
    sinks = list(sinks)
    drop = source.is_live if drop_oldest is None else drop_oldest
    stats, shared = PipelineStats(), _Shared()
    queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=max(1, queue_size)) for _ in range(4)]
    threads = [
        threading.Thread(
            target=_decode,
            name="prodseg-decode",
            daemon=True,
            args=(iter(source), queues[0], stats, shared, drop, max_frames),
        )
    ]
    for i, (name, fn, setup) in enumerate(_stage_functions(predictor)):
        threads.append(
            threading.Thread(
                target=_stage,
                name=f"prodseg-{name}",
                daemon=True,
                args=(name, fn, setup, queues[i], queues[i + 1], stats, shared),
            )
        )
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    try:
        _drain(queues[-1], sinks, stats, shared, on_result)
    except BaseException as exc:
        shared.fail(exc)
    finally:
        shared.stop.set() if shared.error else None
        for t in threads:
            t.join()
        stats.wall_s = time.perf_counter() - t0
    if shared.error is not None:
        raise shared.error
    stats.decode_error = source.decode_error
    return stats


def _drain(
    inq: queue.Queue,
    sinks: list[Sink],
    stats: PipelineStats,
    shared: _Shared,
    on_result: Callable[[Frame, Prediction], None] | None,
) -> None:
    for job in _jobs(inq, shared):
        _write(job, sinks, stats, on_result)
    # Another stage failed or was interrupted: the frames it finished before that are already queued
    # here, and reach the sinks, so an interrupted run keeps every frame it completed.
    while True:
        try:
            job = inq.get_nowait()
        except queue.Empty:
            return
        if job is _END:
            return
        _write(job, sinks, stats, on_result)


def _write(
    job: _Job, sinks: list[Sink], stats: PipelineStats, on_result: Callable[[Frame, Prediction], None] | None
) -> None:
    pred: Prediction = job.data
    pred.timings = job.timings
    t0 = time.perf_counter()
    for sink in sinks:
        sink.write(job.frame, pred)
    if on_result is not None:
        on_result(job.frame, pred)
    stats.stage_ms["sink"].append((time.perf_counter() - t0) * 1e3)
    stats.frames += 1

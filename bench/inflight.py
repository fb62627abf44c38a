"""Throughput mode: several inference requests in flight.

One thread decodes and preprocesses, N workers each own one inference handle (a request, a session),
and the caller's thread postprocesses results in frame order. That is how a store box gets its FPS:
while one request computes, the next frame is already decoded and another request is running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prodseg.bench.timers import now_ms, time_call

_STOP = object()


@dataclass
class InflightStats:
    frames: int = 0
    wall_s: float = 0.0
    stages: dict[str, list[float]] = field(
        default_factory=lambda: {"decode": [], "preprocess": [], "infer": [], "postprocess": []}
    )
    done_at_ms: list[float] = field(default_factory=list)  # completion times from the start


class _Run:
    """Shared state of one in-flight run: the work queue, finished results and the first error."""

    def __init__(self, requests: int) -> None:
        self.work: queue.Queue[Any] = queue.Queue(maxsize=2 * requests)
        self.cond = threading.Condition()
        self.done: dict[int, tuple[Any, Any, Any, float, float, float]] = {}
        self.total: int | None = None
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            self.error = self.error or exc
            self.cond.notify_all()


def _produce(run: _Run, frames: Iterable[Any], predictor: Any, workers: int) -> None:
    count = 0
    try:
        it = iter(frames)
        while run.error is None:
            start = now_ms()
            frame = next(it, _STOP)
            if frame is _STOP:
                break
            decode_ms = now_ms() - start
            (feed, ctx), pre_ms = time_call(predictor.preprocess_frame, frame)
            run.work.put((count, frame, feed, ctx, decode_ms, pre_ms))
            count += 1
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
        run.fail(exc)
    finally:
        with run.cond:
            run.total = count
            run.cond.notify_all()
        for _ in range(workers):
            run.work.put(_STOP)


def _work(run: _Run, infer: Callable[[Any], Any]) -> None:
    while (item := run.work.get()) is not _STOP:
        seq, frame, feed, ctx, decode_ms, pre_ms = item
        try:
            outputs, infer_ms = time_call(infer, feed)
        except BaseException as exc:  # noqa: BLE001
            run.fail(exc)
            continue
        with run.cond:
            run.done[seq] = (frame, outputs, ctx, decode_ms, pre_ms, infer_ms)
            run.cond.notify_all()


def _next_in_order(run: _Run, seq: int) -> tuple[Any, ...] | None:
    with run.cond:
        while seq not in run.done and run.error is None and (run.total is None or seq < run.total):
            run.cond.wait(0.5)
        if run.error is not None:
            raise run.error
        return run.done.pop(seq, None)


def run_inflight(
    frames: Iterable[Any],
    predictor: Any,
    infers: list[Callable[[Any], Any]],
    on_result: Callable[[Any, Any], None] | None = None,
) -> InflightStats:
    """Run the pipeline with len(infers) requests in flight; postprocess and report in frame order."""
    run = _Run(len(infers))
    threads = [threading.Thread(target=_produce, args=(run, frames, predictor, len(infers)), daemon=True)]
    threads += [threading.Thread(target=_work, args=(run, fn), daemon=True) for fn in infers]
    stats = InflightStats()
    start = now_ms()
    for t in threads:
        t.start()
    try:
        while (item := _next_in_order(run, stats.frames)) is not None:
            frame, outputs, ctx, decode_ms, pre_ms, infer_ms = item
            pred, post_ms = time_call(predictor.postprocess, outputs, ctx)
            for stage, ms in zip(stats.stages, (decode_ms, pre_ms, infer_ms, post_ms), strict=True):
                stats.stages[stage].append(ms)
            stats.frames += 1
            stats.done_at_ms.append(now_ms() - start)
            if on_result is not None:
                on_result(frame, pred)
    finally:
        # Stops the producer early if this side failed; workers drain the queue up to their sentinels.
        run.fail(RuntimeError("stopped"))
        for t in threads:
            t.join()
    stats.wall_s = (now_ms() - start) / 1000
    return stats

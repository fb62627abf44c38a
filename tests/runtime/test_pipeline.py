"""The threaded pipeline: order and completeness for files, drop-oldest for live sources, errors surface."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import prodseg.runtime as rt
from prodseg.runtime.pipeline import run_pipeline
from prodseg.runtime.sources import Frame, FrameSource, open_source


class _Synthetic(FrameSource):
    """Frames whose pixel value encodes their index; optionally 'live' (produced faster than consumed)."""

    def __init__(self, n: int, live: bool = False):
        super().__init__()
        self.n, self.is_live, self.size, self.frame_count = n, live, (40, 30), None if live else n

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            if self.is_live:
                time.sleep(0.001)  # a fast camera
            yield Frame(i, np.full((30, 40, 3), i % 256, np.uint8), i / 30)


@pytest.mark.slow
def test_file_source_keeps_every_frame_in_order(deeplab, tiny_video) -> None:
    pred = rt.load(deeplab[0], threads=1)
    seen: list[int] = []
    src = open_source(tiny_video[0])
    stats = run_pipeline(src, pred, queue_size=2, on_result=lambda f, p: seen.append(f.index))
    assert seen == list(range(24)) and stats.frames == 24 and stats.dropped == 0
    assert all(len(getattr(stats, s)) == 24 for s in ("decode", "preprocess", "infer", "postprocess", "sink"))
    assert stats.decode_error is None and stats.fps > 0
    # the pipeline's results equal predict_frame() (the same preprocessing) on the same frames
    first = next(iter(open_source(tiny_video[0])))
    direct = pred.predict_frame(first)
    again: list[np.ndarray] = []
    run_pipeline(
        open_source(tiny_video[0]), pred, max_frames=1, on_result=lambda f, p: again.append(p.label_map)
    )
    assert len(again) == 1 and np.array_equal(again[0], direct.label_map)


@pytest.mark.slow
def test_live_source_drops_oldest_frames(deeplab) -> None:
    pred = rt.load(deeplab[0], threads=1)
    seen: list[int] = []
    src = _Synthetic(300, live=True)

    def slow_sink(frame: Frame, p: object) -> None:
        seen.append(frame.index)
        time.sleep(0.005)

    stats = run_pipeline(src, pred, queue_size=1, on_result=slow_sink)
    assert stats.dropped > 0 and stats.frames + stats.dropped == 300
    assert seen == sorted(seen) and seen[-1] == 299  # order kept, the newest frame always arrives


def test_sink_error_stops_the_pipeline(deeplab) -> None:
    pred = rt.load(deeplab[0], threads=1)

    def boom(frame: Frame, p: object) -> None:
        raise OSError("disk full")

    before = threading.active_count()
    with pytest.raises(OSError, match="disk full"):
        run_pipeline(_Synthetic(50), pred, on_result=boom)
    assert threading.active_count() == before


def test_max_frames_and_memory_bound(deeplab) -> None:
    pred = rt.load(deeplab[0], threads=1)
    stats = run_pipeline(_Synthetic(10_000), pred, queue_size=2, max_frames=5)
    assert stats.frames == 5


def test_runner_is_bound_to_the_inference_thread(deeplab, monkeypatch) -> None:
    """A GPU runner selects its device per thread (CUDA's current device is per thread): the pipeline binds
    the runner in its inference thread before the first frame, once; the runner here records the threads."""
    pred = rt.load(deeplab[0], backend="onnxruntime", threads=1)
    events: list[tuple[str, int]] = []
    infer_impl = pred.runner.infer_impl

    def recording_infer(feed):
        events.append(("infer", threading.get_ident()))
        return infer_impl(feed)

    def slow_bind() -> None:  # a device switch taking 0.3 s: no frame's infer time may include it
        events.append(("bind", threading.get_ident()))
        time.sleep(0.3)

    monkeypatch.setattr(pred.runner, "bind_thread_impl", slow_bind)
    monkeypatch.setattr(pred.runner, "infer_impl", recording_infer)
    stats = run_pipeline(_Synthetic(4), pred, queue_size=1)
    assert max(stats.infer) < 300
    infer_threads = {ident for what, ident in events if what == "infer"}
    assert len(infer_threads) == 1 and threading.get_ident() not in infer_threads
    assert events[0] == ("bind", *infer_threads) and [e[0] for e in events].count("bind") == 1
    assert len(events) == 5


def test_infer_binds_any_thread_it_runs_in(deeplab, monkeypatch) -> None:
    """Threads the pipeline does not own (the benchmark's model-only workers) are bound on their first
    infer, and only then."""
    pred = rt.load(deeplab[0], backend="onnxruntime", threads=1)
    feed, _ = pred.preprocess(np.zeros((30, 40, 3), np.uint8))
    bound: list[int] = []
    monkeypatch.setattr(pred.runner, "bind_thread_impl", lambda: bound.append(threading.get_ident()))

    def work() -> None:
        pred.runner.infer(feed)
        pred.runner.infer(feed)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert sorted(bound) == sorted(t.ident for t in workers)

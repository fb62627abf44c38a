"""The in-flight scheduler on a deterministic sleeping stage object; real backends are in test_cli.py."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from prodseg.bench.inflight import run_inflight


class SleepyStages:
    """preprocess/postprocess like a Predictor; infer sleeps longer for early frames to reorder finishes."""

    def preprocess(self, image, bgr=False):
        return {"x": image.astype(np.float32) / 255}, {"shape": image.shape}

    def preprocess_frame(self, frame):
        return self.preprocess(frame.image, bgr=True)

    def postprocess(self, outputs, ctx):
        return SimpleNamespace(label_map=(outputs["x"] > 0.5).astype(np.uint8), index=outputs["i"])


def frames(n):
    return [
        SimpleNamespace(index=i, image=np.full((4, 4, 3), i * 10, np.uint8), timestamp_s=i / 30)
        for i in range(n)
    ]


def make_infer(delays):
    def infer(feed):
        i = int(round(float(feed["x"][0, 0, 0]) * 255 / 10))
        time.sleep(delays[i])
        return {"x": feed["x"], "i": i}

    return infer


def test_results_come_back_in_frame_order_with_requests_in_flight():
    delays = [0.08, 0.01, 0.05, 0.01, 0.02, 0.01]
    seen = []
    stats = run_inflight(
        frames(6),
        SleepyStages(),
        [make_infer(delays)] * 3,
        on_result=lambda f, p: seen.append((f.index, p.index)),
    )
    assert seen == [(i, i) for i in range(6)]
    assert stats.frames == 6 and all(len(v) == 6 for v in stats.stages.values())
    # Serial inference would take >= 0.18 s; three in flight overlap the sleeps.
    assert stats.wall_s < 0.17
    assert stats.done_at_ms == sorted(stats.done_at_ms)


def test_one_request_is_serial():
    stats = run_inflight(frames(4), SleepyStages(), [make_infer([0.02] * 4)])
    assert stats.wall_s >= 0.08 and stats.frames == 4


def test_errors_reach_the_caller():
    def broken(feed):
        raise ValueError("backend exploded")

    with pytest.raises(ValueError, match="exploded"):
        run_inflight(frames(5), SleepyStages(), [broken, broken])

    def bad_frames():
        yield from frames(2)
        raise OSError("decode failed")

    with pytest.raises(OSError, match="decode failed"):
        run_inflight(bad_frames(), SleepyStages(), [make_infer([0.0] * 3)])

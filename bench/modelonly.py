"""Model-only timing: `infer` alone, called back to back on preprocessed frames of the same video."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from prodseg.bench.timers import Deadline, time_call

# Distinct frames to preprocess up front; cycling them keeps the input realistic without decoding.
FEED_FRAMES = 8


def collect_feeds(source: Any, predictor: Any, count: int = FEED_FRAMES) -> tuple[list[Any], list[Any]]:
    """Decode the first `count` frames and preprocess them: (feeds, frames)."""
    feeds, frames = [], []
    for frame in itertools.islice(iter(source), count):
        feed, _ = predictor.preprocess(frame.image, bgr=True)
        feeds.append(feed)
        frames.append(frame)
    return feeds, frames


def time_infer(infer: Callable[[Any], Any], feeds: list[Any], deadline: Deadline,
               on_step: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds of each `infer(feed)` call, cycling the feeds until the deadline."""
    if not feeds:
        return []
    times: list[float] = []
    deadline.start()
    for feed in itertools.cycle(feeds):
        if deadline.done(len(times)):
            break
        _, ms = time_call(infer, feed)
        times.append(ms)
        if on_step is not None:
            on_step()
    return times

"""Model-only timing: `infer` alone, called back to back on preprocessed frames of the same video."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from prodseg.bench.timers import Deadline, now_ms, time_call

# Distinct frames to preprocess up front; cycling them keeps the input realistic without decoding.
FEED_FRAMES = 8


def collect_feeds(source: Any, predictor: Any, count: int = FEED_FRAMES) -> tuple[list[Any], list[Any]]:
    """Decode the first `count` frames and preprocess them: (feeds, frames)."""
    feeds, frames = [], []
    for frame in itertools.islice(iter(source), count):
        feed, _ = predictor.preprocess_frame(frame)
        feeds.append(feed)
        frames.append(frame)
    return feeds, frames


def time_infer(
    infer: Callable[[Any], Any],
    feeds: list[Any],
    deadline: Deadline,
    on_step: Callable[[], None] | None = None,
) -> list[float]:
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


def time_inflight(
    infers: list[Callable[[Any], Any]],
    feeds: list[Any],
    deadline: Deadline,
    on_step: Callable[[], None] | None = None,
) -> list[float]:
    """All `infers` (one per request, each in its own thread) cycling the feeds until the deadline:
    the milliseconds between consecutive completions, the first from the start (their sum = wall time)."""
    if not feeds or not infers:
        return []
    lock = threading.Lock()
    done_at: list[float] = []
    started: list[int] = [0]
    errors: list[BaseException] = []

    def work(infer: Callable[[Any], Any]) -> None:
        try:
            while True:
                with lock:
                    if errors or deadline.done(started[0]):
                        return
                    feed = feeds[started[0] % len(feeds)]
                    started[0] += 1
                infer(feed)
                with lock:
                    done_at.append(now_ms())
                    if on_step is not None:
                        on_step()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(fn,), daemon=True) for fn in infers]
    deadline.start()
    start = now_ms()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    stamps = [start, *sorted(done_at)]
    return [b - a for a, b in itertools.pairwise(stamps)]

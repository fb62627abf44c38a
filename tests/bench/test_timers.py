import time

import pytest

from prodseg.bench.timers import Deadline, time_call, timed


def test_timed_appends_even_on_error():
    times: list[float] = []
    with timed(times):
        time.sleep(0.01)
    with pytest.raises(ValueError), timed(times):
        raise ValueError
    assert len(times) == 2 and times[0] >= 9.0


def test_time_call_returns_result_and_ms():
    result, ms = time_call(lambda a, b: a + b, 2, 3)
    assert result == 5 and 0 <= ms < 1000


def test_deadline_by_frames_duration_or_neither():
    assert [Deadline(frames=3).done(n) for n in range(5)] == [False, False, False, True, True]
    d = Deadline(duration_s=0.02)
    d.start()
    assert not d.done(10**6)
    time.sleep(0.03)
    assert d.done(0)
    assert not Deadline().done(10**9)

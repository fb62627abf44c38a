import pytest

from prodseg.bench.gates import check_baseline, check_limits
from prodseg.errors import BadInput

MACHINE = {"cpu_model": "Test CPU", "logical_cores": 2}


def result(fps=20.0, fps_model=40.0, p99=80.0, rss=300.0, key="abc|openvino|v.mp4|latencyx1"):
    return {
        "key": key,
        "artifact": "m/model.xml",
        "backend": "openvino",
        "video": "v.mp4",
        "sha256": "f" * 6,
        "mode": "latency",
        "requests": 1,
        "fps_e2e": fps,
        "fps_model": fps_model,
        "latency_ms": {"p99": p99},
        "memory": {"peak_rss_mb": rss},
    }


def test_limits_pass_and_fail_with_gate_lines():
    r = result()
    assert check_limits([r], {"min-fps": 20.0, "max-p99-ms": 80.0, "max-memory-mb": 300.0}) == []
    assert check_limits([r], {"min-fps": None}) == []
    misses = check_limits([r], {"min-fps": 1e9, "max-p99-ms": 50.0, "max-memory-mb": 299.0})
    assert [m.gate for m in misses] == ["min-fps", "max-p99-ms", "max-memory-mb"]
    line = "gate min-fps: measured 20 FPS, limit 1e+09 FPS (m/model.xml [openvino] on v.mp4)"
    assert misses[0].line() == line
    assert misses[1].line().startswith("gate max-p99-ms: measured 80 ms, limit 50 ms")


def test_regression_threshold_is_relative_to_baseline():
    base = {"schema": "prodseg-bench/1", "machine": MACHINE, "results": [result(fps=20.0, fps_model=40.0)]}
    # 10 % allowed: 18.0 FPS passes exactly, 17.9 fails; model FPS 36 passes.
    assert check_baseline([result(fps=18.0, fps_model=36.0)], base, MACHINE, 0.10) == []
    misses = check_baseline([result(fps=17.9, fps_model=50.0)], base, MACHINE, 0.10)
    assert [m.gate for m in misses] == ["regression-fps_e2e"]
    assert misses[0].limit == pytest.approx(18.0)
    assert "baseline 20 FPS, max regression 10%" in misses[0].line()
    # Faster than the baseline never fails.
    assert check_baseline([result(fps=100.0, fps_model=100.0)], base, MACHINE, 0.0) == []


def test_baseline_from_other_machine_or_artifact_is_bad_input():
    base = {
        "schema": "prodseg-bench/1",
        "machine": {"cpu_model": "Other", "logical_cores": 2},
        "results": [result()],
    }
    with pytest.raises(BadInput, match="another machine"):
        check_baseline([result()], base, MACHINE, 0.1)
    base["machine"] = MACHINE
    with pytest.raises(BadInput, match="has no result for m/model.xml"):
        check_baseline([result(key="other|openvino|v.mp4|latencyx1")], base, MACHINE, 0.1)
    with pytest.raises(BadInput, match="max-regression"):
        check_baseline([result()], base, MACHINE, 1.5)

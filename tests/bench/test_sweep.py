"""prodseg-bench --sweep: configurations, the accuracy gate, the recommendation; throughput model-only."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from prodseg.bench import sweep
from prodseg.bench.modelonly import time_inflight
from prodseg.bench.timers import Deadline


def test_configurations_cover_backends_precisions_and_modes(monkeypatch) -> None:
    monkeypatch.setattr(sweep, "_bf16_capable", lambda: True)
    monkeypatch.setattr(sweep.importlib.util, "find_spec", lambda name: object())
    names = [c.name for c in sweep.configurations(Path("m.onnx"))]
    assert names == [
        f"{b} {p} {m}"
        for b, p in (("onnxruntime", "artifact"), ("openvino", "f32"), ("openvino", "bf16"))
        for m in ("latency", "throughput x2", "throughput x4")
    ]
    monkeypatch.setattr(sweep, "_bf16_capable", lambda: False)
    assert {c.precision for c in sweep.configurations(Path("m.xml"))} == {"f32"}


def test_agreement_counts_equal_pixels() -> None:
    ref = [np.zeros((2, 5), np.uint8), np.ones((2, 5), np.uint8)]
    other = [np.zeros((2, 5), np.uint8), np.ones((2, 5), np.uint8)]
    other[1][0, :3] = 7
    assert sweep.agreement(other, ref) == 17 / 20


def _row(fps: float, passed: bool) -> sweep.SweepRow:
    result = SimpleNamespace(fps_e2e=fps, fps_model=fps * 1.1, latency=SimpleNamespace(p99=10.0))
    return sweep.SweepRow(sweep.SweepConfig("openvino", "f32", "latency", 1), result, 1.0, passed)


def test_recommended_is_the_fastest_that_passes() -> None:
    rows = [_row(40, True), _row(60, False), _row(50, True)]
    assert sweep.recommended(rows) is rows[2]
    assert sweep.recommended([_row(60, False)]) is None
    doc = sweep.sweep_document(rows, 0.99)
    assert doc["recommended"]["fps_e2e"] == 50 and len(doc["rows"]) == 3


def test_time_inflight_reports_wall_time_per_frame() -> None:
    def infer(feed):
        time.sleep(0.02)

    ms = time_inflight([infer, infer], [{"x": 1}], Deadline(frames=6))
    assert len(ms) == 6
    assert 50 <= sum(ms) <= 150  # six 20 ms calls, two at a time: ~60 ms of wall time, not 120


def test_time_inflight_raises_a_request_error() -> None:
    def broken(feed):
        raise ValueError("request failed")

    with pytest.raises(ValueError, match="request failed"):
        time_inflight([broken], [{"x": 1}], Deadline(frames=3))


def test_sweep_needs_one_model_and_one_video(tiny_video, tiny_artifacts, tmp_path) -> None:
    from click.testing import CliRunner

    from prodseg.bench.cli import main

    res = CliRunner().invoke(
        main,
        [
            str(tiny_video[0]),
            "--model",
            str(tiny_artifacts["onnx"]),
            "--model",
            str(tiny_artifacts["openvino"]),
            "--sweep",
            "--json",
            str(tmp_path / "s.json"),
        ],
    )
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: --sweep: give one --model")
    assert "Traceback" not in res.output and not (tmp_path / "s.json").exists()

"""prodseg-bench end to end on the tiny synthetic video with real ONNX Runtime and OpenVINO sessions."""

import importlib.util
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from prodseg.bench.cli import main
from prodseg.runtime.runners import auto_backend

pytestmark = pytest.mark.slow  # exports a tiny model once per session
# --report plots need matplotlib (prodseg[report]), which an edge install may leave out.
REPORT = importlib.util.find_spec("matplotlib") is not None


def bench(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def onnx_run(tiny_video, tiny_artifacts, tmp_path_factory):
    """One measured run shared by the output tests: both backends, ground truth, JSON and report."""
    video, masks = tiny_video
    out = tmp_path_factory.mktemp("bench_out")
    res = bench(
        video,
        "--model",
        tiny_artifacts["onnx"],
        "--model",
        tiny_artifacts["openvino"],
        "--frames",
        30,
        "--warmup",
        2,
        "--gt-masks",
        masks,
        "--json",
        out / "r.json",
        *(["--report", out / "report"] if REPORT else []),
        "--save-baseline",
        out / "base.json",
        "--max-memory-mb",
        1e6,
    )
    return res, out


def test_table_json_report_and_baseline(onnx_run):
    res, out = onnx_run
    assert res.exit_code == 0, res.output
    assert "model.onnx" in res.output and "openvino" in res.output and "FPS e2e" in res.output
    doc = json.loads((out / "r.json").read_text())
    assert doc["schema"] == "prodseg-bench/1"
    assert doc["settings"]["frames"] == 30
    # --backend auto: the .onnx runs on OpenVINO where it is installed, and the JSON says why
    assert [r["backend"] for r in doc["results"]] == [auto_backend(".onnx", "cpu")[0], "openvino"]
    assert [r["backend_choice"]["asked"] for r in doc["results"]] == ["auto", "auto"]
    assert doc["results"][0]["backend_choice"]["why"] == auto_backend(".onnx", "cpu")[1]
    assert all(r["backend_choice"]["preprocess_in_model"] for r in doc["results"])
    for r in doc["results"]:
        assert r["frames"] == 30 and r["warmup"] == 2  # 24-frame video looped to 30
        assert r["model_only_ms"]["count"] == 30
        assert set(r["stages_ms"]) == {"decode", "preprocess", "infer", "postprocess"}
        assert r["fps_e2e"] > 0 and r["fps_model"] > 0 and r["memory"]["peak_rss_mb"] > 10
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
        assert 0 <= r["accuracy"]["miou"] <= 1 and r["accuracy"]["frames"] == 30
        assert r["accuracy"]["flicker"] == pytest.approx(
            max(0.0, r["accuracy"]["pred_change_rate"] - r["accuracy"]["gt_change_rate"]), abs=2e-6
        )
        assert len(r["sha256"]) == 64
    assert json.loads((out / "base.json").read_text())["results"] == doc["results"]
    plots = {"report.md", "latency_hist.png", "stages.png", "fps_timeline.png", "accuracy_vs_fps.png"}
    assert not REPORT or {p.name for p in (out / "report").iterdir()} >= plots


def test_min_fps_gate_exits_1_with_gate_line(tiny_video, tiny_artifacts, tmp_path):
    res = bench(
        tiny_video[0],
        "--model",
        tiny_artifacts["onnx"],
        "--frames",
        4,
        "--warmup",
        1,
        "--min-fps",
        1e9,
        "--save-baseline",
        tmp_path / "b.json",
    )
    assert res.exit_code == 1
    assert "gate min-fps: measured" in res.output and "limit 1e+09 FPS" in res.output
    assert not (tmp_path / "b.json").exists()  # a failing run is never saved as a baseline


def test_regression_against_baseline(onnx_run, tiny_video, tiny_artifacts, tmp_path):
    _, out = onnx_run
    doc = json.loads((out / "base.json").read_text())
    doc["results"] = [r for r in doc["results"] if r["artifact"].endswith(".onnx")]
    doc["results"][0]["fps_e2e"] *= 1000
    (tmp_path / "fast.json").write_text(json.dumps(doc))
    args = (tiny_video[0], "--model", tiny_artifacts["onnx"], "--frames", 30, "--warmup", 1)
    res = bench(*args, "--baseline", tmp_path / "fast.json")
    assert res.exit_code == 1 and "gate regression-fps_e2e: measured" in res.output
    doc["machine"]["cpu_model"] = "some other CPU"
    (tmp_path / "other.json").write_text(json.dumps(doc))
    res = bench(*args, "--baseline", tmp_path / "other.json")
    assert res.exit_code == 2 and "another machine" in res.output


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_throughput_mode_keeps_every_frame_in_order(tiny_video, tiny_artifacts, tmp_path, backend):
    video, masks = tiny_video
    res = bench(
        video,
        "--model",
        tiny_artifacts["onnx"],
        "--backend",
        backend,
        "--mode",
        "throughput",
        "--requests",
        2,
        "--frames",
        24,
        "--warmup",
        1,
        "--gt-masks",
        masks,
        "--json",
        tmp_path / "t.json",
    )
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "t.json").read_text())["results"][0]
    assert (r["mode"], r["requests"], r["frames"], r["backend"]) == ("throughput", 2, 24, backend)
    # In-order delivery: every consecutive pair of frames was compared for flicker.
    assert r["accuracy"]["frames"] == 24 and r["accuracy"]["gt_change_rate"] > 0


def test_bad_input_exits_2_with_one_line(tiny_video, tiny_artifacts, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    cases = [
        (corrupt, "--model", tiny_artifacts["onnx"]),
        (tmp_path / "missing.mp4", "--model", tiny_artifacts["onnx"]),
        (tiny_video[0], "--model", tmp_path / "missing.onnx"),
        (tiny_video[0], "--model", tiny_artifacts["onnx"], "--backend", "nosuch"),
        (tiny_video[0], "--model", tiny_artifacts["onnx"], "--baseline", tmp_path / "none.json"),
        (tiny_video[0], "--model", tiny_artifacts["onnx"], "--gt-masks", tmp_path / "nomasks"),
    ]
    for args in cases:
        res = bench(*args, "--frames", 2, "--warmup", 0)
        assert res.exit_code == 2, (args, res.output)
        errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, res.output
        assert "Traceback" not in res.output


def test_import_leaves_torch_out():
    code = (
        "import sys, prodseg.bench, prodseg.bench.cli, prodseg.bench.suite, prodseg.bench.measure, "
        "prodseg.bench.report; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('torch', 'matplotlib')))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

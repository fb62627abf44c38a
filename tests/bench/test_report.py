import json

import pytest

from prodseg.bench.accuracy import AccuracyResult
from prodseg.bench.measure import fps_timeline, per_frame_latency
from prodseg.bench.report import write_report
from prodseg.bench.results import SCHEMA, ModelResult, artifact_digest, load_document, run_document
from prodseg.bench.stats import Stats
from prodseg.errors import BadInput


def make_result(name="a.onnx", fps_scale=1.0, accuracy=True):
    stages = {
        "decode": [1.0, 2.0, 1.5],
        "preprocess": [0.5, 0.5, 0.6],
        "infer": [10.0, 12.0, 11.0],
        "postprocess": [1.0, 1.0, 1.2],
    }
    return ModelResult(
        artifact=f"/x/{name}",
        sha256="0" * 64,
        size_mb=1.5,
        backend="onnxruntime",
        device="cpu",
        precision="fp32",
        arch="unet",
        video="/v/shelf.mp4",
        mode="latency",
        requests=1,
        frames=3,
        warmup=2,
        wall_s=0.05 * fps_scale,
        stages={k: Stats(v) for k, v in stages.items()},
        latency=Stats(per_frame_latency(stages)),
        model_only=Stats([10.0, 10.0, 10.0, 10.0]),
        peak_rss_mb=321.0,
        rss_method="psutil",
        cpu_percent=75.0,
        cores_busy=1.5,
        accuracy=AccuracyResult(
            3, 0.5, 0.02, 0.01, [0.75, 0.25, float("nan")], ["background", "product", "tag"]
        )
        if accuracy
        else None,
        fps_timeline=fps_timeline([10.0, 900.0, 1500.0], bin_s=1.0),
    )


def test_derived_figures():
    r = make_result()
    assert r.fps_e2e == pytest.approx(60.0)
    assert r.fps_model == pytest.approx(100.0)
    assert r.latency.values == pytest.approx((12.5, 15.5, 14.3))
    assert r.fps_timeline == [(1.0, 2.0), (2.0, 1.0)]
    # A 2 s run gets 0.2 s bins; a 6 s run 1 s bins.
    short = fps_timeline([100.0, 150.0, 1000.0, 2000.0])
    assert len(short) == 10 and short[0] == pytest.approx((0.2, 10.0)) and short[-1][1] == pytest.approx(5.0)
    assert fps_timeline([0.0, 500.0, 6000.0]) == [
        (1.0, 2.0),
        (2.0, 0.0),
        (3.0, 0.0),
        (4.0, 0.0),
        (5.0, 0.0),
        (6.0, 1.0),
    ]
    d = r.as_dict()
    assert d["accuracy"] == {
        "frames": 3,
        "miou": 0.5,
        "flicker": 0.01,
        "pred_change_rate": 0.02,
        "gt_change_rate": 0.01,
        "iou": [0.75, 0.25, None],
        "classes": ["background", "product", "tag"],
    }
    assert d["label"] == "x/" + d["artifact"].split("/")[-1]
    assert d["key"] == "0" * 64 + "|onnxruntime|shelf.mp4|latencyx1"
    assert d["stages_ms"]["infer"]["p50"] == 11.0


def test_document_schema_and_round_trip(tmp_path):
    doc = run_document([make_result()], {"frames": 3})
    assert doc["schema"] == SCHEMA == "prodseg-bench/1"
    assert {"cpu_model", "logical_cores", "versions"} <= set(doc["machine"])
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    assert load_document(path)["results"][0]["fps_model"] == 100.0
    path.write_text('{"schema": "other/9"}')
    with pytest.raises(BadInput, match="schema 'other/9'"):
        load_document(path)
    path.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        load_document(path)
    with pytest.raises(BadInput, match="no such file"):
        load_document(tmp_path / "missing.json")


def test_artifact_digest_covers_ir_weights(tmp_path):
    (tmp_path / "m.xml").write_bytes(b"<net/>")
    one = artifact_digest(tmp_path / "m.xml")
    (tmp_path / "m.bin").write_bytes(b"\0" * 1024)
    two = artifact_digest(tmp_path / "m.xml")
    assert one[0] != two[0] and two[1] == pytest.approx((6 + 1024) / 1e6)  # MB = 10^6 bytes


def test_report_files(tmp_path):
    pytest.importorskip("matplotlib", reason="--report plots need prodseg[report]")
    results = [make_result("a.onnx"), make_result("b.xml", fps_scale=0.5)]
    doc = run_document(results, {})
    md = write_report(tmp_path / "rep", results, doc)
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["accuracy_vs_fps.png", "fps_timeline.png", "latency_hist.png", "report.md", "stages.png"]
    assert all((tmp_path / "rep" / n).read_bytes()[:4] == b"\x89PNG" for n in names if n.endswith(".png"))
    text = md.read_text()
    assert "| x/a.onnx | onnxruntime |" in text and "![stages](stages.png)" in text
    assert "| run | background | product | tag |" in text
    assert "| x/a.onnx [onnxruntime] shelf.mp4 | 75.0 | 25.0 | — |" in text
    # One model, no accuracy: no scatter plot.
    write_report(tmp_path / "one", [make_result(accuracy=False)], run_document([make_result()], {}))
    assert not (tmp_path / "one" / "accuracy_vs_fps.png").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_failing_plot_leaves_no_half_report(tmp_path, monkeypatch, existing):
    pytest.importorskip("matplotlib", reason="--report plots need prodseg[report]")
    from prodseg.bench import report

    def broken(plt, results):
        raise RuntimeError("plot failed")

    monkeypatch.setitem(report.PLOTS, "stages.png", (broken, lambda rs: True))
    out = tmp_path / "rep"
    if existing:
        out.mkdir()
        (out / "mine.txt").write_text("kept")
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report(out, [make_result()], run_document([make_result()], {}))
    # a new folder appears complete or not at all; an existing one never gets a report.md without its plots
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["mine.txt", "rep"] if existing else [])

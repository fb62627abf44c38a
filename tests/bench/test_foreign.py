"""prodseg-bench on models exported elsewhere (model flags, nameless OpenVINO outputs, dynamic shapes) and
on an ultralytics-saved .pt; the JSON records the input shape and post-processing used."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from prodseg.bench.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))
from foreign_models import SHELF10, export_semantic, export_yolo, ultralytics_openvino  # noqa: E402

SEMANTIC = ["--task", "semantic", "--names", ",".join(SHELF10)]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foreign_bench")
    return {
        "static": export_semantic(d / "seg.onnx"),
        "dynamic": export_semantic(d / "dyn.onnx", dynamic=True),
        "ultra_ir": ultralytics_openvino(d / "yolo_openvino_model", export_yolo(d / "yolo.onnx")),
    }


def bench(tmp_path: Path, *args: object) -> dict:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [str(a) for a in (*args, "--frames", 3, "--warmup", 1, "--json", out)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_semantic_onnx_with_flags_only(foreign, tiny_video, tmp_path: Path) -> None:
    doc = bench(tmp_path, tiny_video[0], "--model", foreign["static"], *SEMANTIC, "--gt-masks", tiny_video[1])
    result = doc["results"][0]
    assert result["input_shape"] == [1, 3, 64, 64] and result["accuracy"]["frames"] == 3
    assert result["postprocess"] == {"classes": None} and result["arch"] == "external"
    assert doc["settings"]["model_flags"]["task"] == "semantic_logits"


def test_dynamic_onnx_runs_at_the_videos_aspect(foreign, tiny_video, tmp_path: Path) -> None:
    card = tmp_path / "dyn.json"
    doc = bench(
        tmp_path,
        tiny_video[0],
        "--model",
        foreign["dynamic"],
        *SEMANTIC,
        "--input-size",
        "64x96",
        "--save-card",
        card,
    )
    assert doc["results"][0]["input_shape"] == [1, 3, 64, 96]
    meta = json.loads(card.read_text())
    meta["input_size"] = [128, 128]  # the nominal size: a 160x96 video runs at 96x128
    copy = tmp_path / "dyn.onnx"
    copy.write_bytes(foreign["dynamic"].read_bytes())
    card.write_text(json.dumps(meta))
    assert bench(tmp_path, tiny_video[0], "--model", copy)["results"][0]["input_shape"] == [1, 3, 96, 128]


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_nameless_openvino_ir_folder(foreign, tiny_video, tmp_path: Path, mode: str) -> None:
    doc = bench(
        tmp_path,
        tiny_video[0],
        "--model",
        foreign["ultra_ir"],
        "--mode",
        mode,
        "--conf",
        "0.4",
        "--max-det",
        "10",
        "--classes",
        "bottle",
    )
    result = doc["results"][0]
    assert result["backend"] == "openvino" and result["frames"] == 3
    assert result["postprocess"] == {"conf": 0.4, "iou": 0.45, "max_det": 10, "classes": ["bottle"]}


@pytest.mark.slow
def test_ultralytics_pt_on_cpu(tiny_video, tmp_path: Path) -> None:
    YOLO = pytest.importorskip("ultralytics", reason="ultralytics is a training extra").YOLO

    pt = tmp_path / "yolov8n-seg.pt"
    YOLO("yolov8n-seg.yaml", task="segment").save(str(pt))
    doc = bench(
        tmp_path, tiny_video[0], "--model", pt, "--device", "cpu", "--threads", 1, "--precision", "bf16"
    )
    result = doc["results"][0]
    assert result["backend"] == "torch" and result["precision"] == "bf16"
    assert result["input_shape"] == [1, 3, 640, 640] and result["postprocess"]["max_det"] == 300
    assert doc["settings"]["precision_options"] == {"precision": "bf16"}

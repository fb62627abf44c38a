"""prodseg-bench end to end on models built without torch: exact accuracy against known masks, gates,
both CPU backends on a YOLOv8-seg model, and --report refused up front where matplotlib is missing."""

from __future__ import annotations

import importlib.util
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from prodseg.bench.cli import main
from prodseg.data.imageio import write_mask

sys.path.append(str(Path(__file__).parents[1]))
import edge_models as em  # noqa: E402

FRAMES = 6


def bench(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def stripes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a lossless 4:4:4 H.264 video of the semantic model's colour stripes, its per-frame masks)."""
    import av

    d = tmp_path_factory.mktemp("stripes")
    image, labels = em.stripes_rgb((64, 96))
    (d / "masks").mkdir()
    with av.open(str(d / "stripes.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv444p"
        stream.options = {"crf": "0", "threads": "1"}
        for i in range(FRAMES):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            write_mask(d / "masks" / f"{i:06d}.png", labels)
        container.mux(stream.encode())
    return d / "stripes.mp4", d / "masks"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bench_edge_models")
    return {"semantic": em.write_semantic(d / "semantic.onnx"), "yolo": em.write_yolo_seg(d / "yolo.onnx")}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_accuracy_against_known_masks_is_exact(stripes, models, backend: str, tmp_path: Path) -> None:
    video, masks = stripes
    res = bench(
        video,
        "--model",
        models["semantic"],
        "--backend",
        backend,
        "--frames",
        FRAMES,
        "--warmup",
        1,
        "--threads",
        1,
        "--gt-masks",
        masks,
        "--json",
        tmp_path / "r.json",
        "--min-fps",
        0.001,
        "--max-memory-mb",
        1e6,
        "--save-baseline",
        tmp_path / "base.json",
    )
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert (result["backend"], result["frames"], result["input_shape"]) == (backend, FRAMES, [1, 3, 64, 96])
    accuracy = result["accuracy"]
    assert accuracy["miou"] == 1.0 and accuracy["frames"] == FRAMES and accuracy["flicker"] == 0
    assert accuracy["iou"][:4] == [1.0, 1.0, 1.0, 1.0]
    assert (tmp_path / "base.json").is_file()


def test_gates_fail_with_exit_1_and_save_nothing(stripes, models, tmp_path: Path) -> None:
    res = bench(
        stripes[0],
        "--model",
        models["semantic"],
        "--frames",
        3,
        "--warmup",
        0,
        "--threads",
        1,
        "--max-p99-ms",
        1e-6,
        "--json",
        tmp_path / "r.json",
        "--save-baseline",
        tmp_path / "base.json",
    )
    assert res.exit_code == 1, res.output
    assert "gate max-p99-ms: measured" in res.output
    assert (tmp_path / "r.json").is_file() and not (tmp_path / "base.json").exists()


def test_yolo_seg_on_both_cpu_backends(stripes, models, tmp_path: Path) -> None:
    res = bench(
        stripes[0],
        "--model",
        models["yolo"],
        "--backend",
        "onnxruntime",
        "--backend",
        "openvino",
        "--frames",
        3,
        "--warmup",
        1,
        "--threads",
        1,
        "--json",
        tmp_path / "r.json",
    )
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["backend"] for r in results] == ["onnxruntime", "openvino"]
    assert all(r["postprocess"]["conf"] == 0.01 and r["input_shape"] == [1, 3, 128, 128] for r in results)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None, reason="matplotlib is installed")
def test_report_without_matplotlib_is_refused_before_any_work(stripes, models, tmp_path: Path) -> None:
    res = bench(
        stripes[0],
        "--model",
        models["semantic"],
        "--frames",
        2,
        "--json",
        tmp_path / "r.json",
        "--report",
        tmp_path / "rep",
    )
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "prodseg[report]" in lines[0]
    assert list(tmp_path.iterdir()) == []

"""Fixtures of the pytest-benchmark suite: the tiny exported models of tests/bench, an INT8 twin, frames."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from tiny_models import build_tiny_artifacts, quantize_qdq  # noqa: E402


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'onnx', 'openvino', 'int8'}: a random 64x64 UNet as ONNX, OpenVINO IR and static QDQ INT8 ONNX."""
    folder = tmp_path_factory.getbasetemp() / "tiny_artifacts"
    if (folder / "model.xml").is_file() and (folder / "model.onnx").is_file():
        paths = {"onnx": folder / "model.onnx", "openvino": folder / "model.xml"}
    else:
        paths = build_tiny_artifacts(folder)
    int8 = folder / "model_int8.onnx"
    paths["int8"] = int8 if int8.is_file() else quantize_qdq(paths["onnx"], int8)
    return paths


@pytest.fixture(scope="session")
def frame_720p() -> np.ndarray:
    """A fixed 720p BGR frame with structure (gradients + blocks), not flat noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:720, 0:1280]
    img = np.stack([(x // 5) % 256, (y // 3) % 256, ((x + y) // 7) % 256], -1).astype(np.uint8)
    img[::40, :] = rng.integers(0, 255, (18, 1280, 3), dtype=np.uint8)
    return img


@pytest.fixture(scope="session")
def yolo_pipeline_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ultralytics' YOLOv8n-seg ONNX at 320², random weights, exported offline; a 1280x720 shelf video)."""
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    ultralytics = pytest.importorskip("ultralytics")
    from prodseg.data.synth import generate_video

    out = tmp_path_factory.mktemp("yolo_pipeline")
    cfg = Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-seg.yaml"
    yaml_path = out / "yolov8n-seg.yaml"  # the 'n' selects the nano scale
    yaml_path.write_text(cfg.read_text().replace("nc: 80", "nc: 9"))
    with contextlib.chdir(out):  # a model built from a YAML exports into the working folder
        onnx_path = ultralytics.YOLO(str(yaml_path), task="segment").export(
            format="onnx", imgsz=320, opset=17
        )
    video = generate_video(out / "shelf720.mp4", frames=30, size=(1280, 720), fps=30, seed=2)
    return out / Path(onnx_path).name, video

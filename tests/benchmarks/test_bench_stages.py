"""pytest-benchmark timings of the runtime's stages and pipeline (saved with --benchmark-json)."""

from __future__ import annotations

import numpy as np
import pytest

from prodseg.metadata import ArtifactMetadata
from prodseg.runtime import load
from prodseg.runtime.pipeline import run_pipeline
from prodseg.runtime.postprocess import semantic, yolo_seg
from prodseg.runtime.preprocess import fit, geometry, normalize_lut, to_nchw
from prodseg.runtime.sources import open_source

pytestmark = pytest.mark.benchmark(max_time=0.5, min_rounds=5, warmup=True, warmup_iterations=2)
NC = 9  # YOLO classes (shelf10 without background)


@pytest.fixture(scope="module")
def ort(tiny_artifacts):
    with load(tiny_artifacts["onnx"], backend="onnxruntime") as predictor:
        yield predictor


@pytest.fixture(scope="module")
def ov(tiny_artifacts):
    with load(tiny_artifacts["openvino"], backend="openvino") as predictor:
        yield predictor


def yolo_meta() -> ArtifactMetadata:
    names = ["background"] + [f"c{i}" for i in range(NC)]
    return ArtifactMetadata(
        arch="yolov8_seg",
        class_names=names,
        class_colors=[[0, 0, 0]] * len(names),
        input_size=[640, 640],
        mean=[0, 0, 0],
        std=[1, 1, 1],
        output_kind="yolo_seg",
        resize="letterbox",
    )


def yolo_outputs(boxes: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    """YOLOv8-seg 640² raw outputs: (1, 4+nc+32, 8400), `boxes` confident anchors; protos (1, 32, 160²)."""
    rng = np.random.default_rng(seed)
    pred = np.zeros((1, 4 + NC + 32, 8400), np.float32)
    pred[0, 4 : 4 + NC] = rng.random((NC, 8400), np.float32) * 0.1
    idx = rng.choice(8400, boxes, replace=False)
    cx, cy = rng.uniform(60, 580, boxes), rng.uniform(100, 540, boxes)
    pred[0, 0, idx], pred[0, 1, idx] = cx, cy
    pred[0, 2, idx], pred[0, 3, idx] = rng.uniform(20, 80, boxes), rng.uniform(40, 120, boxes)
    pred[0, 4 + rng.integers(0, NC, boxes), idx] = rng.uniform(0.5, 0.95, boxes)
    pred[0][4 + NC :, idx] = rng.normal(0, 1, (32, boxes))
    return {"output0": pred, "output1": rng.normal(0, 1, (1, 32, 160, 160)).astype(np.float32)}


def test_preprocess_720p_letterbox_640(benchmark, frame_720p):
    lut = normalize_lut([0, 0, 0], [1, 1, 1])

    def pre():
        ctx = geometry(frame_720p.shape[:2], (640, 640), "letterbox")
        return to_nchw(fit(frame_720p, ctx), lut, bgr=True)

    out = benchmark(pre)
    assert out.shape == (1, 3, 640, 640)


def test_preprocess_predictor_720p(benchmark, ort, frame_720p):
    feed, ctx = benchmark(ort.preprocess, frame_720p, True)
    assert ctx.frame_size == (720, 1280)


def test_postprocess_semantic_to_720p(benchmark):
    logits = np.random.default_rng(0).normal(size=(1, 10, 128, 128)).astype(np.float32)
    ctx = geometry((720, 1280), (128, 128), "resize")
    meta = yolo_meta()
    pred = benchmark(semantic, {"logits": logits}, ctx, meta)
    assert pred.label_map.shape == (720, 1280)


def test_postprocess_yolo_seg_720p(benchmark):
    outputs, ctx = yolo_outputs(), geometry((720, 1280), (640, 640), "letterbox")
    pred = benchmark(yolo_seg, outputs, ctx, yolo_meta())
    assert pred.label_map.shape == (720, 1280) and 0 < len(pred.instances) <= 24


@pytest.mark.parametrize("backend", ["ort", "ov"])
def test_infer_tiny(benchmark, request, backend, frame_720p):
    predictor = request.getfixturevalue(backend)
    feed, _ = predictor.preprocess(frame_720p, bgr=True)
    out = benchmark(predictor.infer, feed)
    assert next(iter(out.values())).shape[:2] == (1, 10)


def test_pipeline_tiny_video(benchmark, ov, tiny_video):
    stats = benchmark.pedantic(
        lambda: run_pipeline(open_source(tiny_video[0]), ov), rounds=3, warmup_rounds=1
    )
    assert stats.frames == 24 and stats.decode_error is None
    benchmark.extra_info["fps"] = round(stats.fps, 1)

"""The runtime on models built without torch: exact label maps and instances on ONNX Runtime and OpenVINO,
prodseg-predict on an image folder, and (on an edge install) proof that torch is absent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import prodseg.runtime as rt
from prodseg.runtime.cli import main

sys.path.append(str(Path(__file__).parents[1]))
import edge_models as em  # noqa: E402

BACKENDS = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("edge_models")
    semantic = em.write_semantic(d / "semantic.onnx")
    return {
        "semantic": semantic,
        "ir": em.to_openvino(semantic, em.semantic_metadata()),
        "yolo": em.write_yolo_seg(d / "yolo.onnx"),
        "yolo_swapped": em.save(em.yolo_seg_onnx(swap=True), d / "swapped.onnx", em.yolo_metadata()),
    }


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_the_edge_install_has_no_torch() -> None:
    out = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True)
    assert out.returncode != 0 and "No module named 'torch'" in out.stderr


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("scale", [1, 2])
def test_semantic_label_map_is_exact(models, backend: str, fuse: bool, scale: int) -> None:
    image, labels = em.stripes_rgb((64 * scale, 96 * scale))
    with rt.load(models["semantic"], backend=backend, threads=1, fuse_preprocess=fuse) as pred:
        assert pred.fused == fuse
        assert np.array_equal(pred.predict(image).label_map, labels)
        bgr = np.ascontiguousarray(image[..., ::-1])
        assert np.array_equal(pred.predict(bgr, bgr=True).label_map, labels)


def test_openvino_ir_with_its_sidecar_is_exact(models) -> None:
    image, labels = em.stripes_rgb((64, 96))
    with rt.load(models["ir"], threads=1) as pred:
        assert pred.backend == "openvino" and pred.meta.arch == "deeplabv3plus"
        assert np.array_equal(pred.predict(image).label_map, labels)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("side", [128, 64, 256])
def test_yolo_instances_are_exact(models, backend: str, side: int) -> None:
    scale = side / 128
    with rt.load(models["yolo"], backend=backend, threads=1) as pred:
        out = pred.predict(np.full((side, side, 3), 90, np.uint8))
    assert [d.class_id for d in out.instances] == [c for c, _, _ in em.YOLO_EXPECTED]
    assert [d.score for d in out.instances] == pytest.approx([s for _, s, _ in em.YOLO_EXPECTED], abs=1e-6)
    assert [d.box.tolist() for d in out.instances] == [[v * scale for v in b] for _, _, b in em.YOLO_EXPECTED]
    for det, (_, _, box) in zip(out.instances, em.YOLO_EXPECTED, strict=True):
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        expected = np.zeros((side, side), bool)
        expected[y0:y1, x0:x1] = True
        assert np.array_equal(det.mask, expected)  # positive prototypes: the mask is the whole box
    assert np.array_equal(out.label_map, em.yolo_label_map((side, side), scale))


def test_yolo_letterbox_maps_boxes_back_to_the_frame(models) -> None:
    """A 64x128 frame fills the 128 input at scale 1 with 32 rows of padding on top."""
    with rt.load(models["yolo"], threads=1) as pred:
        out = pred.predict(np.zeros((64, 128, 3), np.uint8))
    boxes = [[v - 32 * (i % 2) for i, v in enumerate(box)] for _, _, box in em.YOLO_EXPECTED]
    clipped = [[min(max(v, 0), 128 if i % 2 == 0 else 64) for i, v in enumerate(b)] for b in boxes]
    assert [d.box.tolist() for d in out.instances] == clipped


def test_yolo_output_order_does_not_matter(models) -> None:
    frame = np.full((96, 160, 3), 30, np.uint8)
    with rt.load(models["yolo"], threads=1) as a, rt.load(models["yolo_swapped"], threads=1) as b:
        pa, pb = a.predict(frame), b.predict(frame)
    assert np.array_equal(pa.label_map, pb.label_map) and len(pa.instances) == len(pb.instances) == 3


def test_predict_on_an_image_folder_writes_the_exact_masks(models, tmp_path: Path) -> None:
    images, out = tmp_path / "photos", tmp_path / "out"
    images.mkdir()
    expected = {}
    for stem, size in {"a": (64, 96), "b": (128, 192)}.items():
        image, expected[stem] = em.stripes_rgb(size)
        cv2.imwrite(str(images / f"{stem}.png"), image[..., ::-1])
    res = CliRunner().invoke(
        main,
        [
            str(images),
            "--model",
            str(models["semantic"]),
            "--out",
            str(out),
            "--save-masks",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    for stem, labels in expected.items():
        assert np.array_equal(cv2.imread(str(out / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED), labels)
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert lines[0]["class_pixels"] == {
        "background": 24 * 64,
        "shelf": 24 * 64,
        "price_tag": 24 * 64,
        "bottle": 24 * 64,
    }


def test_predict_writes_the_exact_instances(models, tiny_video, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        [
            str(tiny_video[0]),
            "--model",
            str(models["yolo"]),
            "--out",
            str(out),
            "--max-frames",
            "2",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    first = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert [(i["class_name"], i["score"]) for i in first["instances"]] == [
        ("bottle", 0.9),
        ("can", 0.7),
        ("box", 0.6),
    ]

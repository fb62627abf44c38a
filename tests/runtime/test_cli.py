"""prodseg-predict end to end: outputs for each CPU backend and architecture; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from prodseg.runtime.cli import main


def _run(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["deeplab", "unet", "yolo", "deeplab_ir"])
def test_predict_writes_video_masks_jsonl(model: str, request, tiny_video, tmp_path: Path) -> None:
    art = request.getfixturevalue(model)
    art = art[0] if isinstance(art, tuple) else art
    out = tmp_path / "out"
    res = _run(tiny_video[0], "--model", art, "--out", out, "--save-video", "--save-masks", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "24 frames" in res.output
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(24))
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 24 and cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).shape == (96, 160)
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 24 and summary["decode_error"] is None
    assert not [p for p in out.rglob(".*")]  # no temporary leftovers
    if model == "yolo":
        assert any(json.loads(line)["instances"] for line in lines)


@pytest.mark.slow
def test_truncated_video_processes_what_decodes_and_exits_2(deeplab, truncated_video, tmp_path: Path) -> None:
    res = _run(truncated_video, "--model", deeplab[0], "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "decoding stopped at frame" in res.output and "truncated or corrupt" in res.output
    n = len((tmp_path / "o" / "predictions.jsonl").read_text().splitlines())
    assert 0 < n < 30 and f"stopped at frame {n} " in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such.mp4", "--model", "MODEL"], "no such video"),
        (["VIDEO", "--model", "/no/model.onnx"], "model file not found"),
        (["VIDEO", "--model", "MODEL", "--save-video"], "need --out DIR"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, deeplab, tiny_video) -> None:
    swap = {"MODEL": str(deeplab[0]), "VIDEO": str(tiny_video[0])}
    res = _run(*[swap.get(a, a) for a in args])
    assert res.exit_code == 2 and message in res.output
    assert res.output.strip().count("\n") == 0 and res.output.startswith("error: ")


def test_unknown_backend_lists_choices(deeplab, tiny_video) -> None:
    res = _run(tiny_video[0], "--model", deeplab[0], "--backend", "tflite")
    assert res.exit_code == 2 and "onnxruntime" in res.output


def test_max_frames(deeplab, tiny_video, tmp_path: Path) -> None:
    res = _run(tiny_video[0], "--model", deeplab[0], "--out", tmp_path, "--max-frames", "3")
    assert res.exit_code == 0 and res.output.strip().startswith("3 frames")
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 3


@pytest.mark.slow
def test_an_image_folder_gives_outputs_named_by_stem_with_class_names(deeplab, tmp_path: Path) -> None:
    import numpy as np

    images = tmp_path / "shelf_photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    for stem, (h, w) in {"store_a_0001": (96, 160), "store_b_0002": (120, 90)}.items():
        cv2.imwrite(str(images / f"{stem}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    out = tmp_path / "out"
    res = _run(images, "--model", deeplab[0], "--out", out, "--save-video", "--save-masks")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["store_a_0001.png", "store_b_0002.png"]
    overlays = {p.stem: cv2.imread(str(p)).shape[:2] for p in (out / "overlays").iterdir()}
    assert overlays == {"store_a_0001": (96, 160), "store_b_0002": (120, 90)}  # each at its own size
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["image"] for r in lines] == ["store_a_0001", "store_b_0002"]
    assert set(lines[0]["class_pixels"]) <= set(summary["classes"]) and summary["classes"][0] == "background"
    # the masks pair with ground truth by stem: prodseg-eval scores the folder as it is
    pytest.importorskip("torch", reason="prodseg-eval needs the training stack (prodseg[train])")
    truth = tmp_path / "truth"
    truth.mkdir()
    from prodseg.train.eval_cli import main as eval_main

    for p in (out / "masks").iterdir():
        (truth / p.name).write_bytes(p.read_bytes())
    scored = CliRunner().invoke(eval_main, ["--predictions", str(out / "masks"), "--gt", str(truth)])
    assert scored.exit_code == 0 and "mIoU 1.0000" in scored.output
    again = _run(images, "--model", deeplab[0], "--out", out, "--save-masks", "--overwrite")
    assert again.exit_code == 0, again.output  # the stem-named PNGs are recognised as predict's own


@pytest.mark.slow
def test_yolo_instances_carry_class_names_and_rle_masks(yolo, tiny_video, tmp_path: Path) -> None:
    from pycocotools import mask as coco_mask

    art = yolo[0] if isinstance(yolo, tuple) else yolo
    out = tmp_path / "out"
    res = _run(tiny_video[0], "--model", art, "--out", out, "--max-frames", "3", "--conf", "0.001")
    assert res.exit_code == 0, res.output
    names = json.loads((out / "summary.json").read_text())["classes"]
    found = [
        i
        for line in (out / "predictions.jsonl").read_text().splitlines()
        for i in json.loads(line)["instances"]
    ]
    assert found and all(i["class_name"] == names[i["class_id"]] for i in found)
    rle = found[0]["segmentation"]
    mask = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert mask.shape == (96, 160) and mask.any()

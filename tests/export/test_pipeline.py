"""Export verification reads data by class name: a reordered classes.yaml scores the same, others exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import yaml
from click.testing import CliRunner

from prodseg.data.imageio import read_mask, write_mask
from prodseg.export.cli import main


def _verify_miou(ckpt, data, out) -> tuple[int, float | None, str]:
    res = CliRunner().invoke(
        main, [str(a) for a in (ckpt, "--out", out, "--calib-data", data, "--verify-images", "2")]
    )
    if res.exit_code != 0:
        return res.exit_code, None, res.stderr
    rows = json.loads((out / "export_manifest.json").read_text())["verification"]["rows"]
    return 0, rows[0]["miou"], res.stderr


def test_a_reordered_classes_yaml_gives_the_same_verification_miou(deeplab_ckpt, tiny_dataset, tmp_path):
    code, original, err = _verify_miou(deeplab_ckpt, tiny_dataset, tmp_path / "a")
    assert code == 0, err
    reordered = tmp_path / "reordered"
    shutil.copytree(tiny_dataset, reordered)
    raw = yaml.safe_load((reordered / "classes.yaml").read_text())
    order = list(range(len(raw["names"])))[::-1]  # new label i = old label order[i]
    new_of_old = np.zeros(256, np.uint8)
    new_of_old[255] = 255
    for new, old in enumerate(order):
        new_of_old[old] = new
    (reordered / "classes.yaml").write_text(
        yaml.safe_dump(
            {"names": [raw["names"][o] for o in order], "colors": [raw["colors"][o] for o in order]}
        )
    )
    for mask in (reordered / "masks").glob("*.png"):
        write_mask(mask, new_of_old[read_mask(mask)])
    code, remapped, err = _verify_miou(deeplab_ckpt, reordered, tmp_path / "b")
    assert code == 0 and remapped == original, err


def test_a_dataset_with_other_classes_exits_2_before_any_work(deeplab_ckpt, tiny_dataset, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    raw = yaml.safe_load((other / "classes.yaml").read_text())
    raw["names"][-1] = "logo"
    (other / "classes.yaml").write_text(yaml.safe_dump(raw))
    code, _, err = _verify_miou(deeplab_ckpt, other, tmp_path / "out")
    assert code == 2 and "have different classes" in err and "logo" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_plan_runs_every_family_after_the_files_it_reads() -> None:
    from pathlib import Path

    from prodseg.export.config import ExportConfig
    from prodseg.export.pipeline import export_order, plan

    def cfg(*formats: str, **kw) -> ExportConfig:
        return ExportConfig(checkpoint=Path("x.pt"), formats=formats, **kw)

    assert export_order(cfg("onnx")) == ["onnx"]
    assert export_order(cfg("openvino")) == ["onnx", "openvino"]
    # a TensorRT FP16 engine is built from the FP16 ONNX, so that comes first
    assert export_order(cfg("trt", "fp16")) == ["onnx", "fp16", "trt"]
    # the INT8 engine reads the symmetric QDQ ONNX; the CPU INT8 ONNX (asymmetric) is written as before
    assert export_order(cfg("trt", "int8")) == ["onnx", "int8", "int8_trt", "trt"]
    assert export_order(cfg("trt", "fp16", "int8")) == ["onnx", "fp16", "int8", "int8_trt", "trt"]
    assert "int8_trt" not in export_order(cfg("int8", "openvino"))
    trt_line = plan(cfg("trt", "int8"), Path("out"), [1], [Path("a.jpg")])
    assert "int8_trt from onnx -> model_int8_trt.onnx (INT8 QDQ, symmetric int8 for TensorRT" in trt_line
    assert "trt from onnx, int8_trt -> TensorRT engines" in trt_line
    line = plan(cfg("int8", "openvino"), Path("out"), [1, 2], [Path("a.jpg")] * 3)
    assert line.startswith(
        "plan: onnx -> model.onnx (FP32); int8 from onnx -> model_int8.onnx (INT8 QDQ, "
        "calibrated), 3 calibration images; openvino from onnx -> openvino/"
    )

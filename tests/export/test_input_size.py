"""prodseg-export --input-size and --dynamic: the ONNX and IR take that size (or any), their metadata
says so, and verification runs at the exported size (at the training size for --dynamic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import prodseg.runtime as rt
from prodseg.export.cli import main


def export(*args: object) -> dict:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    out = Path(str(args[args.index("--out") + 1]))
    return json.loads((out / "export_manifest.json").read_text())


@pytest.mark.slow
def test_export_at_another_size(deeplab_ckpt: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    manifest = export(
        deeplab_ckpt,
        "--out",
        tmp_path / "e",
        "--openvino",
        "--input-size",
        "96x128",
        "--calib-data",
        tiny_dataset,
        "--verify-images",
        2,
    )
    assert manifest["metadata"]["input_size"] == [96, 128] and manifest["options"]["input_size"] == [96, 128]
    for name in ("model.onnx", "openvino/model.xml"):
        with rt.load(tmp_path / "e" / name) as p:
            assert not p.dynamic and p.input_shape == [1, 3, 96, 128]
    assert all(row["status"] == "ok" for row in manifest["verification"]["rows"])


@pytest.mark.slow
def test_export_dynamic(deeplab_ckpt: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    manifest = export(
        deeplab_ckpt,
        "--out",
        tmp_path / "e",
        "--openvino",
        "--dynamic",
        "--calib-data",
        tiny_dataset,
        "--verify-images",
        2,
    )
    assert manifest["metadata"]["input_size"] == [64, 64]  # the training size: what verification ran at
    assert all(row["status"] == "ok" for row in manifest["verification"]["rows"])
    for name in ("model.onnx", "openvino/model.xml"):
        with rt.load(tmp_path / "e" / name) as p:
            assert p.dynamic and p.input_shape == [1, 3, 64, 64]
            assert p.adapt_to((48, 160)) == (32, 64)  # a wide video at the nominal 64

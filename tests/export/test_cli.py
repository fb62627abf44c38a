from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from prodseg.export.cli import main
from tests.export.conftest import make_checkpoint


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_missing_checkpoint(tmp_path):
    res = run(tmp_path / "nope.pt", "--no-verify")
    assert res.exit_code == 2 and "nope.pt: checkpoint not found" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_trt_fails_before_any_work(tmp_path, deeplab_ckpt):
    pytest.importorskip("prodseg.export.trt")
    from tests.export.test_trt import has_trt_gpu

    if has_trt_gpu():
        pytest.skip("TensorRT and a GPU are present here")
    out = tmp_path / "out"
    res = run(deeplab_ckpt, "--trt", "--int8", "--out", out)
    assert res.exit_code == 2
    assert "pip install 'prodseg[tensorrt]'" in res.output and "NVIDIA GPU" in res.output
    assert not out.exists()


def test_unwritable_output_folder(tmp_path, deeplab_ckpt):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run(deeplab_ckpt, "--out", blocker / "sub", "--no-verify")
    assert res.exit_code == 2 and "cannot create the output folder" in res.output


def test_calibration_folder_without_images(tmp_path, deeplab_ckpt):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run(deeplab_ckpt, "--int8", "--calib-data", empty, "--out", tmp_path / "out", "--no-verify")
    assert res.exit_code == 2 and "no images" in res.output and str(empty) in res.output
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_unknown_arch(tmp_path):
    path = make_checkpoint(tmp_path / "x.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["model"]["architecture"] = "segformer"
    torch.save(ckpt, path)
    res = run(path, "--no-verify", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "segformer" in res.output and "deeplabv3plus" in res.output


@pytest.mark.slow
def test_default_is_onnx_and_full_run_is_verified(tmp_path, deeplab_ckpt, tiny_dataset):
    out = tmp_path / "out"
    res = run(deeplab_ckpt, "--out", out, "--no-verify")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["export_manifest.json", "model.onnx"]

    # FP16 ONNX is covered by test_onnx_fp16; the FP16 IR is verified here.
    res = run(
        deeplab_ckpt,
        "--out",
        out,
        "--onnx",
        "--openvino",
        "--int8",
        "--calib-images",
        "4",
        "--verify-images",
        "2",
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "export_manifest.json").read_text())
    rows = {r["artifact"]: r for r in manifest["verification"]["rows"]}
    assert set(rows) == {"onnx", "onnx_int8", "openvino", "openvino_fp16", "openvino_int8"}
    for name in ("onnx", "openvino"):
        assert rows[name]["agreement"] >= 0.999 and rows[name]["max_abs_diff"] < 1e-3
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert all(0 <= r["miou"] <= 1 for r in rows.values())  # fractions in data, percent in the table
    assert "export verification vs PyTorch" in res.output
    for rel in (
        "model.onnx",
        "model_int8.onnx",
        "openvino/model.xml",
        "openvino_fp16/model.json",
        "openvino_int8/model.bin",
    ):
        assert (out / rel).is_file(), rel
    assert not [p for p in out.rglob(".*") if p.name != "calib_cache"]  # no temporaries left
    int8 = next(a for a in manifest["artifacts"] if a["name"] == "onnx_int8")
    assert int8["calib_images"] == 4 and int8["calib_cache_reused"] is False

    # Same model and images: the cached ranges are reused; an impossible gate fails with --strict.
    res = run(
        deeplab_ckpt,
        "--out",
        out,
        "--int8",
        "--calib-images",
        "4",
        "--verify-images",
        "2",
        "--strict",
        "--int8-delta-miou",
        "-1",
    )
    assert res.exit_code == 1 and "verification failed (--strict)" in res.output
    manifest = json.loads((out / "export_manifest.json").read_text())
    int8 = next(a for a in manifest["artifacts"] if a["name"] == "onnx_int8")
    assert int8["calib_cache_reused"] is True

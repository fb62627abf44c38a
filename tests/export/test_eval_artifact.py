"""`prodseg-eval --model` scores exported artifacts through the runtime."""

from __future__ import annotations

import json

from click.testing import CliRunner

from prodseg.train.eval_cli import main as eval_main


def _eval(model, data, out) -> dict:
    res = CliRunner().invoke(eval_main, ["--model", str(model), "--data", str(data), "--report", str(out)])
    assert res.exit_code == 0, res.output
    return json.loads((out / "metrics.json").read_text())


def test_fp32_onnx_scores_like_its_checkpoint(exported_onnx, deeplab_ckpt, tiny_dataset, tmp_path):
    onnx_path, _ = exported_onnx
    from_artifact = _eval(onnx_path, tiny_dataset, tmp_path / "onnx")
    from_checkpoint = _eval(deeplab_ckpt, tiny_dataset, tmp_path / "ckpt")
    # The same weights through ONNX Runtime and through PyTorch: FP32 label maps agree to ~100 %.
    assert abs(from_artifact["miou"] - from_checkpoint["miou"]) < 1e-3
    assert abs(from_artifact["pixel_accuracy"] - from_checkpoint["pixel_accuracy"]) < 1e-3

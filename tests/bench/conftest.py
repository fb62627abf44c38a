"""Tiny models for the bench tests, built once per session without torch (tiny_models.py holds the
UNet that tests/benchmarks times)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.append(str(Path(__file__).parents[1]))
import edge_models  # noqa: E402
from tiny_models import tiny_metadata  # noqa: E402


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'onnx': model.onnx, 'openvino': model.xml}: a 64x64 shelf10 model with prodseg metadata.

    Built with onnx.helper (a fixed 1x1 convolution), so the bench tests run on an edge install
    without torch; the timing suite in tests/benchmarks measures a real UNet instead.
    """
    folder = tmp_path_factory.mktemp("edge_artifacts")
    meta = tiny_metadata()
    model = edge_models.semantic_onnx((meta.input_size[0], meta.input_size[1]))
    onnx_path = edge_models.save(model, folder / "model.onnx", meta)
    return {"onnx": onnx_path, "openvino": edge_models.to_openvino(onnx_path, meta, folder / "model.xml")}

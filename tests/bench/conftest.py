"""Tiny exported models for the bench tests (built once per session, shared with tests/benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import build_tiny_artifacts  # noqa: E402


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'onnx': model.onnx, 'openvino': model.xml}: a random 64x64 UNet with prodseg metadata."""
    folder = tmp_path_factory.getbasetemp() / "tiny_artifacts"
    if (folder / "model.xml").is_file() and (folder / "model.onnx").is_file():
        return {"onnx": folder / "model.onnx", "openvino": folder / "model.xml"}
    return build_tiny_artifacts(folder)

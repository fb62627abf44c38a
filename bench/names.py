"""Short display names for artifacts: OpenVINO IRs are all `model.xml`, so their folder names them."""

from __future__ import annotations

from pathlib import Path


def artifact_label(path: str | Path) -> str:
    """`x/model_int8.onnx` -> `model_int8.onnx`; `x/openvino_int8/model.xml` -> `openvino_int8/model.xml`."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.suffix == ".xml" and p.parent.name else p.name

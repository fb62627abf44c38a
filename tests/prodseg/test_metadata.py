"""Artifact metadata: round trips through ONNX-style props and JSON sidecars; clear errors otherwise."""

from __future__ import annotations

import json

import pytest

from prodseg.errors import BadInput
from prodseg.metadata import METADATA_PREFIX, ArtifactMetadata, read_sidecar, sidecar_path, write_sidecar


def meta(**kw) -> ArtifactMetadata:
    base = dict(
        arch="deeplabv3plus",
        class_names=["background", "shelf"],
        class_colors=[[0, 0, 0], [1, 2, 3]],
        input_size=[64, 96],
    )
    return ArtifactMetadata(**{**base, **kw})


def test_props_are_prefixed_json_strings_and_round_trip() -> None:
    m = meta(precision="int8", extra={"opset": 17})
    props = m.to_props()
    assert all(k.startswith(METADATA_PREFIX) and isinstance(v, str) for k, v in props.items())
    assert props["prodseg.input_size"] == "[64, 96]"
    assert props["prodseg.precision"] == '"int8"'
    assert ArtifactMetadata.from_props({**props, "other.key": "x"}) == m
    assert m.num_classes == 2


def test_props_without_prodseg_keys() -> None:
    with pytest.raises(BadInput, match="model.onnx: has no prodseg metadata; export it with prodseg-export"):
        ArtifactMetadata.from_props({"producer": "x"}, "model.onnx")


def test_props_with_bad_json() -> None:
    with pytest.raises(BadInput, match="not valid JSON"):
        ArtifactMetadata.from_props({"prodseg.arch": "{"}, "m.onnx")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"output_kind": "boxes"}, "output_kind 'boxes' is not one of semantic_logits, yolo_seg"),
        ({"precision": "fp8"}, "precision 'fp8' is not one of fp32, fp16, bf16, int8"),
        ({"input_size": [64]}, r"input_size must be \[height, width\]"),
    ],
)
def test_invalid_values(kw, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        meta(**kw)


def test_from_dict_names_missing_keys_and_ignores_unknown_ones() -> None:
    with pytest.raises(BadInput, match="x.json: prodseg metadata lacks class_colors, input_size; re-export"):
        ArtifactMetadata.from_dict({"arch": "unet", "class_names": ["a"]}, "x.json")
    d = {**meta().to_dict(), "future_field": 1}
    assert ArtifactMetadata.from_dict(d) == meta()


def test_with_precision_copies() -> None:
    m = meta()
    h = m.with_precision("fp16")
    assert (m.precision, h.precision) == ("fp32", "fp16")
    assert h.class_names == m.class_names


def test_sidecar_round_trip(tmp_path) -> None:
    assert sidecar_path(tmp_path / "model.xml") == tmp_path / "model.json"
    assert sidecar_path(tmp_path / "model.engine") == tmp_path / "model.json"
    write_sidecar(tmp_path / "model.engine", meta(output_kind="yolo_seg", resize="letterbox"))
    assert json.loads((tmp_path / "model.json").read_text())["output_kind"] == "yolo_seg"
    assert read_sidecar(tmp_path / "model.engine") == meta(output_kind="yolo_seg", resize="letterbox")


def test_sidecar_errors(tmp_path) -> None:
    with pytest.raises(BadInput, match="model.xml: no metadata sidecar model.json"):
        read_sidecar(tmp_path / "model.xml")
    (tmp_path / "model.json").write_text("{")
    with pytest.raises(BadInput, match="model.json: metadata sidecar is not valid JSON"):
        read_sidecar(tmp_path / "model.xml")

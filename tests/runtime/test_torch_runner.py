"""Torch runner: a prodseg checkpoint runs through the same API and agrees with its ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest

import prodseg.runtime as rt
from prodseg.errors import BadInput


@pytest.mark.slow
def test_checkpoint_agrees_with_its_onnx_export(checkpoint: Path, shelf_frame, tmp_path: Path) -> None:
    import onnx
    import torch

    pt = rt.load(checkpoint, threads=1)
    assert pt.backend == "torch" and pt.meta.input_size == [64, 96]
    assert len(pt.meta.source_checkpoint_sha256) == 64
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(
        pt.runner.module,
        torch.zeros(1, 3, 64, 96),
        str(onnx_path),
        input_names=["images"],
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(onnx_path))
    for k, v in pt.meta.to_props().items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(model, str(onnx_path))
    ort = rt.load(onnx_path, threads=1)
    a, b = pt.predict(shelf_frame), ort.predict(shelf_frame)
    assert (a.label_map == b.label_map).mean() > 0.999
    bf16 = rt.load(checkpoint, threads=1, precision="bf16", channels_last=True)
    assert (bf16.predict(shelf_frame).label_map == a.label_map).mean() > 0.9


def test_bad_checkpoint_and_precision(checkpoint: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"nope")
    with pytest.raises(BadInput, match="junk.pt"):
        rt.load(junk)
    with pytest.raises(BadInput, match="precision 'int4' is not one of fp32, fp16, bf16"):
        rt.load(checkpoint, precision="int4")

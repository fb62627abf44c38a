"""Torch runner: a prodseg checkpoint runs through the same API and agrees with its ONNX export."""

from __future__ import annotations

import threading
import types
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
    ort = rt.load(onnx_path, backend="onnxruntime", threads=1)
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


@pytest.mark.parametrize("device, selects", [("cuda:1", True), ("cuda", False), ("cpu", False)])
def test_checkpoint_selects_its_gpu_in_the_thread_that_infers(device: str, selects: bool) -> None:
    """torch's current device is per thread: a model on cuda:1 run from another thread (the pipeline's
    inference thread) selects cuda:1 there, once. torch.cuda is a stand-in (no CUDA device here)."""
    torch = pytest.importorskip("torch")
    from prodseg.runtime.runners.torch_runner import TorchRunner

    runner = TorchRunner("m.pt", device=device)
    calls: list[tuple[int | None, object]] = []
    cuda = types.SimpleNamespace(set_device=lambda d: calls.append((threading.get_ident(), d)))
    runner._torch, runner._device = types.SimpleNamespace(cuda=cuda), torch.device(device)
    runner.is_active = True
    runner.infer_impl = lambda feed: {}  # type: ignore[method-assign]
    worker = threading.Thread(target=lambda: [runner.infer({}) for _ in range(3)])
    worker.start()
    worker.join()
    assert calls == ([(worker.ident, torch.device("cuda", 1))] if selects else [])

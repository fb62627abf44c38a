"""prodseg-bench on the test device (PRODSEG_TEST_DEVICE, default cuda; tests/gpu_device.py): a training
checkpoint run by the torch backend in reduced precision (fp16 on CUDA, bf16 on CPU) must label the video as
the same checkpoint does in fp32 on that device.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.gpu_device import DEVICE, ON_CPU, reduced_precision, torch_device

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

# mIoU of the reduced-precision labels against the fp32 ones. A random-init model has near-tied logits
# at some pixels, which reduced precision may flip; a wrong cast or layout scores far lower.
MIN_MIOU = 0.9


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init DeepLabV3+ (ResNet-18) shelf10 training checkpoint at 64x96."""
    pytest.importorskip("torch", reason="a training checkpoint needs torch (prodseg[train])")
    from prodseg.config import config_from_dict
    from prodseg.data.taxonomy import SHELF10
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.models import build_model

    model = {"architecture": "deeplabv3plus", "backbone": "resnet18", "num_classes": len(SHELF10.names)}
    cfg = config_from_dict({"model": model, "data": {"image_size": [64, 96]}})
    colors = [list(c) for c in SHELF10.colors]
    ckpt = build_checkpoint(build_model(cfg.model), cfg, list(SHELF10.names), colors)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", ckpt)


def _fp32_labels(checkpoint: Path, video: Path, out: Path) -> Path:
    """The checkpoint's fp32 label map of every frame, written as per-frame masks 000000.png..."""
    import prodseg.runtime as rt
    from prodseg.data.imageio import write_mask
    from prodseg.runtime.sources import open_video

    out.mkdir()
    predictor = rt.load(checkpoint, backend="torch", device=DEVICE, precision="fp32")
    source = open_video(str(video), video.name)
    try:
        for frame in source:
            write_mask(out / f"{frame.index:06d}.png", predictor.predict_frame(frame).label_map)
    finally:
        source.close()
        predictor.close()
    return out


def test_reduced_precision_agrees_with_fp32_labels(checkpoint: Path, tiny_video, tmp_path: Path) -> None:
    torch_device()
    from prodseg.bench.cli import main

    video, _ = tiny_video
    reference = _fp32_labels(checkpoint, video, tmp_path / "fp32")
    precision = reduced_precision()
    args = [str(video), "--model", str(checkpoint), "--device", DEVICE, "--precision", precision]
    args += ["--channels-last", "--frames", "24", "--warmup", "1", "--gt-masks", str(reference)]
    result = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert (row["backend"], row["precision"], row["device"]) == ("torch", precision, DEVICE)
    assert row["accuracy"]["frames"] == 24
    assert row["accuracy"]["miou"] >= MIN_MIOU, row["accuracy"]
    if not ON_CPU and importlib.util.find_spec("pynvml") is not None:
        assert row["memory"]["gpu_memory_mb"] is not None, "NVML is installed but no GPU memory was measured"

"""Export fixtures: tiny 64x64 checkpoints in the prodseg-train format, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodseg.config import Config

SIZE = [64, 64]


def make_checkpoint(
    path: Path,
    arch: str = "deeplabv3plus",
    data_root: Path | str = "data/shelves",
    seed: int = 0,
    varied: bool = False,
) -> Path:
    """Save a randomly initialised `arch` model at 64x64 as a prodseg checkpoint (shelf10 classes).

    Randomly initialised, DeepLabV3+'s features are tiny and its classifier bias picks one class for
    every pixel; `varied` zeroes that bias so label maps hold several classes and label agreement
    between two runtimes can fail.
    """
    import torch

    from prodseg.data.taxonomy import SHELF10
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.models import build_model

    cfg = Config()
    cfg.model.architecture = arch
    cfg.model.num_classes = 9 if arch == "yolov8_seg" else 10
    cfg.data.image_size = list(SIZE)
    cfg.data.root = str(data_root)
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    if varied:
        torch.nn.init.zeros_(model.net.segmentation_head[0].bias)
    ckpt = build_checkpoint(model, cfg, list(SHELF10.names), [list(c) for c in SHELF10.colors])
    return save_checkpoint(path, ckpt)


@pytest.fixture(scope="session")
def deeplab_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", data_root=tiny_dataset)


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory: pytest.TempPathFactory, deeplab_ckpt: Path) -> tuple[Path, object]:
    """(model.onnx, ExportSource) of the DeepLabV3+ checkpoint, exported once."""
    from prodseg.export.onnx_fp32 import export_onnx
    from prodseg.export.source import load_source

    source = load_source(deeplab_ckpt)
    return export_onnx(source, tmp_path_factory.mktemp("onnx") / "model.onnx"), source


@pytest.fixture(scope="session")
def varied_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> tuple[Path, object]:
    """(model.onnx, ExportSource) of a DeepLabV3+ checkpoint whose label maps vary (make_checkpoint)."""
    from prodseg.export.onnx_fp32 import export_onnx
    from prodseg.export.source import load_source

    folder = tmp_path_factory.mktemp("varied")
    source = load_source(make_checkpoint(folder / "best.pt", data_root=tiny_dataset, varied=True))
    return export_onnx(source, folder / "model.onnx"), source

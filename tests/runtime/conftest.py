"""Tiny models exported in the tests themselves: smp semantic nets and a YOLOv8n-seg, ONNX and OpenVINO.

Without the training stack (an edge install) the same fixtures hold onnx.helper models of the same
names, sizes and metadata, and their torch model is None: tests comparing against torch skip there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from prodseg.data.taxonomy import SHELF10
from prodseg.metadata import ArtifactMetadata, write_sidecar

sys.path.append(str(Path(__file__).parents[1]))
import edge_models  # noqa: E402

SEM_SIZE = (64, 96)  # H, W
YOLO_SIZE = 128


def _semantic_meta(arch: str, size: tuple[int, int]) -> ArtifactMetadata:
    return ArtifactMetadata(
        arch=arch,
        class_names=list(SHELF10.names),
        class_colors=[list(c) for c in SHELF10.colors],
        input_size=list(size),
        prodseg_version="test",
    )


def _add_props(path: Path, props: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


def export_smp(arch: str, path: Path, size: tuple[int, int] = SEM_SIZE) -> tuple[Path, object]:
    """A random-init smp model exported to ONNX with prodseg metadata; returns (path, torch model)."""
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(0)
    cls = {"deeplabv3plus": smp.DeepLabV3Plus, "unet": smp.Unet}[arch]
    kw = {"encoder_depth": 3, "decoder_channels": (32, 16, 8)} if arch == "unet" else {}
    model = cls(encoder_name="resnet18", encoder_weights=None, classes=10, **kw).eval()
    torch.onnx.export(
        model,
        torch.zeros(1, 3, *size),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    _add_props(path, _semantic_meta(arch, size).to_props())
    return path, model


def yolo_torch_model() -> object:
    """YOLOv8n-seg (9 classes) with random weights in export mode; class biases raised so boxes exist."""
    import torch
    from ultralytics.nn.tasks import SegmentationModel

    torch.manual_seed(0)
    model = SegmentationModel("yolov8n-seg.yaml", nc=9, verbose=False).eval()
    # Random init's activations vanish with depth (every score ties): BatchNorm statistics from a few
    # images renormalise them, so boxes, scores and masks depend on the image as a trained model's do.
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    with torch.no_grad():
        model.train()
        model(torch.rand(4, 3, YOLO_SIZE, YOLO_SIZE, generator=gen))
        model.eval()
    for m in model.modules():
        if hasattr(m, "export"):
            m.export, m.format = True, "onnx"
    return model


def export_yolo(path: Path, ultralytics_meta: bool = False) -> tuple[Path, object]:
    import torch

    model = yolo_torch_model()
    torch.onnx.export(
        model,
        torch.zeros(1, 3, YOLO_SIZE, YOLO_SIZE),
        str(path),
        input_names=["images"],
        output_names=["output0", "output1"],
        opset_version=17,
        dynamo=False,
    )
    names = {i: n for i, n in enumerate(SHELF10.names[1:])}
    if ultralytics_meta:
        props = {"names": str(names), "imgsz": str([YOLO_SIZE, YOLO_SIZE]), "task": "segment", "stride": "32"}
    else:
        props = ArtifactMetadata(
            arch="yolov8_seg",
            class_names=list(SHELF10.names),
            class_colors=[list(c) for c in SHELF10.colors],
            input_size=[YOLO_SIZE, YOLO_SIZE],
            mean=[0, 0, 0],
            std=[1, 1, 1],
            output_kind="yolo_seg",
            resize="letterbox",
            confidence_threshold=0.01,
            iou_threshold=0.5,
        ).to_props()
    _add_props(path, props)
    return path, model


def to_openvino(onnx_path: Path, meta: ArtifactMetadata) -> Path:
    import openvino as ov

    xml = onnx_path.with_name(onnx_path.stem + "_ir.xml")
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    write_sidecar(xml, meta)
    return xml


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime_models")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="session")
def deeplab(models_dir: Path) -> tuple[Path, object]:
    if not installed("segmentation_models_pytorch"):
        return edge_models.write_semantic(models_dir / "deeplab.onnx", "deeplabv3plus", SEM_SIZE), None
    return export_smp("deeplabv3plus", models_dir / "deeplab.onnx")


@pytest.fixture(scope="session")
def unet(models_dir: Path) -> tuple[Path, object]:
    if not installed("segmentation_models_pytorch"):
        return edge_models.write_semantic(models_dir / "unet.onnx", "unet", SEM_SIZE), None
    return export_smp("unet", models_dir / "unet.onnx")


@pytest.fixture(scope="session")
def yolo(models_dir: Path) -> tuple[Path, object]:
    if not installed("ultralytics"):
        return edge_models.write_yolo_seg(models_dir / "yolo.onnx", YOLO_SIZE), None
    return export_yolo(models_dir / "yolo.onnx")


@pytest.fixture(scope="session")
def yolo_ultralytics(models_dir: Path) -> Path:
    folder = models_dir / "ultra"
    folder.mkdir()
    if not installed("ultralytics"):
        return edge_models.write_yolo_seg(folder / "best.onnx", YOLO_SIZE, ultralytics_meta=True)
    return export_yolo(folder / "best.onnx", ultralytics_meta=True)[0]


@pytest.fixture(scope="session")
def deeplab_ir(deeplab: tuple[Path, object]) -> Path:
    return to_openvino(deeplab[0], _semantic_meta("deeplabv3plus", SEM_SIZE))


@pytest.fixture(scope="session")
def shelf_frame() -> np.ndarray:
    """A 96x160 RGB synthetic shelf photo (not square: letterbox is exercised)."""
    import tempfile

    from prodseg.data.imageio import read_image
    from prodseg.data.layout import ShelfDataset
    from prodseg.data.synth import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dataset(Path(tmp), images=1, size=(96, 160), seed=3)
        return read_image(ShelfDataset(root).split("all")[0].image)


def write_h264(path: Path, frames: int, size: tuple[int, int] = (160, 96), faststart: bool = True) -> Path:
    """Random-noise H.264 MP4 through PyAV; faststart puts the index first so a truncated file still opens."""
    import av

    container = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"} if faststart else {})
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.options = {"g": "5", "threads": "1"}
    rng = np.random.default_rng(0)
    for _ in range(frames):
        img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="session")
def truncated_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames, cut to half its bytes: the first frames decode, then decoding stops."""
    folder = tmp_path_factory.mktemp("truncated")
    full = write_h264(folder / "full.mp4", 30)
    cut = folder / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


# Gaps between presentation times (ms), irregular as from a phone or screen recorder.
VFR_GAPS_MS = [33, 10, 300, 33, 250, 5, 40, 33, 400, 20] * 2


def write_vfr_mkv(path: Path, gaps_ms: list[int] = VFR_GAPS_MS, size: tuple[int, int] = (160, 96)) -> Path:
    """A variable-frame-rate Matroska file: one frame per gap (+1), each with its own millisecond pts."""
    from fractions import Fraction

    import av

    container = av.open(str(path), "w", format="matroska")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    stream.options = {"g": "5", "threads": "1", "bf": "0"}
    pts = 0
    for i, gap in enumerate([*gaps_ms, 33]):
        frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), (i * 37) % 256, np.uint8), "rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        pts += gap
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="session")
def vfr_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """(a VFR .mkv, the gaps in ms between its frames' presentation times)."""
    return write_vfr_mkv(tmp_path_factory.mktemp("vfr") / "vfr.mkv"), VFR_GAPS_MS


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init DeepLabV3+ training checkpoint (64x96, shelf10)."""
    pytest.importorskip("torch", reason="a training checkpoint needs torch (prodseg[train])")
    from prodseg.config import config_from_dict
    from prodseg.data.taxonomy import SHELF10
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.models import build_model

    cfg = config_from_dict(
        {
            "model": {
                "architecture": "deeplabv3plus",
                "backbone": "resnet18",
                "num_classes": len(SHELF10.names),
            },
            "data": {"image_size": [64, 96]},
        }
    )
    colors = [list(c) for c in SHELF10.colors]
    ckpt = build_checkpoint(build_model(cfg.model), cfg, list(SHELF10.names), colors)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", ckpt)

"""Models exported elsewhere, without prodseg metadata: a tiny semantic net by plain torch.onnx.export
(static or dynamic H/W), a tiny YOLOv8-seg-shaped net (outputs in either order), and an ultralytics-style
OpenVINO folder whose output tensors have no names (model.xml/.bin + metadata.yaml). Without torch (an
edge install) the ONNX files are onnx.helper models of the same shapes and tensor names instead."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

sys.path.append(str(Path(__file__).parents[1]))
import edge_models  # noqa: E402

SHELF10 = ["background", "shelf", "price_tag", "bottle", "can", "box", "bag", "jar", "gap", "signage"]
YOLO_NAMES = ["bottle", "can", "box"]


def tiny_semantic(classes: int = len(SHELF10)):
    """An smp-like encoder/decoder (two stride-2 convs, upsample, classifier): (1, C, H, W) logits."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Upsample(scale_factor=4, mode="bilinear"),
        nn.Conv2d(16, classes, 1),
    ).eval()


def export_semantic(path: Path, size: tuple[int, int] = (64, 64), dynamic: bool = False) -> Path:
    """Plain torch.onnx.export (names 'input'/'out', no metadata); `dynamic`: H and W are symbolic."""
    if importlib.util.find_spec("torch") is None:
        return edge_models.save(edge_models.semantic_onnx(size, dynamic, "input", "out"), path)
    import torch

    axes = {"input": {2: "height", 3: "width"}, "out": {2: "height", 3: "width"}} if dynamic else None
    torch.onnx.export(
        tiny_semantic(),
        torch.zeros(1, 3, *size),
        str(path),
        input_names=["input"],
        output_names=["out"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    return path


def fake_yolo(swap: bool = False, nc: int = len(YOLO_NAMES)):
    """YOLOv8-seg's output contract on a 1/8 grid: (1, 4+nc+32, N) boxes/scores/coefficients and
    (1, 32, h, w) prototypes; boxes are 12-28 px around each cell and coefficients and prototypes are
    positive, so every candidate has a mask covering its box."""
    import torch
    from torch import nn

    class FakeYolo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, stride=8, padding=1)
            self.head = nn.Conv2d(8, 4 + nc + 32, 1)
            self.proto = nn.Conv2d(8, 32, 1)

        def forward(self, x):
            f = torch.relu(self.stem(x))
            h, w = f.shape[2:]
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            centres = torch.stack([xs, ys]).float().reshape(1, 2, -1) * 8 + 4
            raw = self.head(f).flatten(2)
            sizes = torch.sigmoid(raw[:, 2:4]) * 16 + 12
            pred = torch.cat(
                [
                    centres + raw[:, :2].tanh() * 4,
                    sizes,
                    torch.sigmoid(raw[:, 4 : 4 + nc]),
                    raw[:, 4 + nc :].abs() + 0.1,
                ],
                1,
            )
            protos = torch.relu(self.proto(f)) + 0.1
            return (protos, pred) if swap else (pred, protos)

    torch.manual_seed(1)
    return FakeYolo().eval()


def export_yolo(path: Path, swap: bool = False, size: int = 64) -> Path:
    if importlib.util.find_spec("torch") is None:
        model = edge_models.yolo_seg_onnx(size, swap, len(YOLO_NAMES), ("pred", "protos"))
        return edge_models.save(model, path)
    import torch

    names = ["protos", "pred"] if swap else ["pred", "protos"]
    torch.onnx.export(
        fake_yolo(swap),
        torch.zeros(1, 3, size, size),
        str(path),
        input_names=["images"],
        output_names=names,
        opset_version=17,
        dynamo=False,
    )
    return path


def ultralytics_openvino(folder: Path, onnx_path: Path, size: int = 64) -> Path:
    """What ultralytics' OpenVINO export writes: model.xml/.bin with NAMELESS outputs + metadata.yaml."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    for output in model.outputs:
        output.get_tensor().set_names(set())
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
    meta = {"task": "segment", "stride": 32, "imgsz": [size, size], "names": dict(enumerate(YOLO_NAMES))}
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder

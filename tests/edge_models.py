"""Tiny segmentation models built with onnx.helper alone (no torch): what an edge install can test on.

A semantic model whose logits are a fixed 1x1 convolution of the normalised RGB pixels, so the label
map of a flat-coloured image is known exactly; a YOLOv8-seg-shaped model whose six anchors are fixed
boxes and scores, so post-processing returns known instances; and the OpenVINO IR of either. Each
carries prodseg metadata as exported models do (ONNX metadata_props, or the IR's JSON sidecar).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from prodseg.data.taxonomy import SHELF10
from prodseg.metadata import ArtifactMetadata, write_sidecar

OPSET = 17
NAMES = list(SHELF10.names)
COLORS = [list(c) for c in SHELF10.colors]

# Semantic logits = W @ rgb + B on the normalised pixel: shelf (1) follows red, price_tag (2) green and
# bottle (3) blue; background (0) wins where every channel is below the mean (a dark pixel); the
# remaining classes never win.
SEMANTIC_W = np.zeros((len(NAMES), 3), np.float32)
SEMANTIC_W[1:4] = np.eye(3, dtype=np.float32)
SEMANTIC_B = np.full(len(NAMES), -10.0, np.float32)
SEMANTIC_B[:4] = 0.0
# RGB colours -> the class the semantic model gives them.
COLOR_CLASSES = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2, (0, 0, 255): 3}

YOLO_NC = len(NAMES) - 1  # ultralytics counts classes without background
COEFFS = 32
PROTO_STRIDE = 4
# Anchors in input pixels: (cx, cy, w, h, ultralytics class, score, mask coefficient sign).
ANCHORS = [
    (40, 40, 40, 40, 2, 0.9, 1),  # kept: bottle (3) at (20, 20, 60, 60)
    (42, 42, 40, 40, 2, 0.8, 1),  # same class, IoU 0.82 with the first: suppressed by NMS
    (50, 50, 40, 40, 3, 0.7, 1),  # overlaps the first but another class: kept, can (4) at (30, 30, 70, 70)
    (96, 96, 32, 48, 4, 0.6, 1),  # kept: box (5) at (80, 72, 112, 120)
    (100, 20, 20, 20, 5, 0.5, -1),  # negative mask logits: an empty mask, dropped
    (20, 100, 16, 16, 6, 0.0, 1),  # score 0: never a candidate
]
# What post-processing keeps on a frame of the input's size: (prodseg class id, score, xyxy box).
YOLO_EXPECTED = [(3, 0.9, (20, 20, 60, 60)), (4, 0.7, (30, 30, 70, 70)), (5, 0.6, (80, 72, 112, 120))]


def semantic_metadata(
    arch: str = "deeplabv3plus", size: tuple[int, int] = (64, 96), **fields: object
) -> ArtifactMetadata:
    """Metadata of a semantic model over the shelf10 classes (ImageNet mean/std, plain resize)."""
    return ArtifactMetadata(
        arch=arch,
        class_names=list(NAMES),
        class_colors=[list(c) for c in COLORS],
        input_size=list(size),
        prodseg_version="test",
        **fields,
    )


def yolo_metadata(size: int = 128, **fields: object) -> ArtifactMetadata:
    """Metadata of the YOLOv8-seg model: 0..1 pixels, letterbox, low confidence threshold."""
    values: dict[str, object] = {
        "mean": [0, 0, 0],
        "std": [1, 1, 1],
        "output_kind": "yolo_seg",
        "resize": "letterbox",
        "confidence_threshold": 0.01,
        "iou_threshold": 0.5,
    }
    return ArtifactMetadata(
        arch="yolov8_seg",
        class_names=list(NAMES),
        class_colors=[list(c) for c in COLORS],
        input_size=[size, size],
        prodseg_version="test",
        **{**values, **fields},
    )


def set_props(model: onnx.ModelProto, props: dict[str, str]) -> onnx.ModelProto:
    """Replace the model's metadata_props with props."""
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _model(nodes: list, inputs: list, outputs: list, inits: list, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="prodseg-tests"
    )
    model.ir_version = 8  # readable by every ONNX Runtime and OpenVINO the extras allow
    onnx.checker.check_model(model, full_check=True)
    return model


def semantic_onnx(
    size: tuple[int, int] = (64, 96),
    dynamic: bool = False,
    input_name: str = "images",
    output_name: str = "logits",
) -> onnx.ModelProto:
    """images (1, 3, H, W) float -> logits (1, C, H, W): a 1x1 Conv with SEMANTIC_W / SEMANTIC_B."""
    h, w = ("height", "width") if dynamic else size
    classes = len(NAMES)
    weight = numpy_helper.from_array(SEMANTIC_W.reshape(classes, 3, 1, 1), "W")
    bias = numpy_helper.from_array(SEMANTIC_B, "B")
    conv = helper.make_node("Conv", [input_name, "W", "B"], [output_name], kernel_shape=[1, 1])
    return _model(
        [conv],
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, classes, h, w])],
        [weight, bias],
        "semantic",
    )


def anchor_table(nc: int = YOLO_NC, scale: float = 1.0) -> np.ndarray:
    """(4 + nc + 32, N) float32: YOLOv8-seg's per-anchor xywh (ANCHORS x scale), class scores (class
    modulo nc) and mask coefficients."""
    table = np.zeros((4 + nc + COEFFS, len(ANCHORS)), np.float32)
    for i, (cx, cy, w, h, cls, score, sign) in enumerate(ANCHORS):
        table[:4, i] = np.array([cx, cy, w, h]) * scale
        table[4 + cls % nc, i] = score
        table[4 + nc :, i] = 0.05 * sign
    return table


def yolo_seg_onnx(
    size: int = 128, swap: bool = False, nc: int = YOLO_NC, names: tuple[str, str] = ("output0", "output1")
) -> onnx.ModelProto:
    """images (1, 3, S, S) -> output0 (1, 4+nc+32, 6) fixed anchors, output1 (1, 32, S/4, S/4) prototypes.

    The anchors are ANCHORS scaled from a 128 input to S. The prototypes are a positive function of the
    image (>= 0.1), so an anchor's mask is its whole box when its coefficients are positive and empty
    when they are negative. `swap` lists the outputs in the other order; `names` names them. The
    anchors get 0 x mean(image) added so that both outputs depend on the input.
    """
    p, pred, protos = size // PROTO_STRIDE, *names
    inits = [
        numpy_helper.from_array(anchor_table(nc, size / 128)[None], "anchors"),
        numpy_helper.from_array(np.float32(0.0), "zero"),
        numpy_helper.from_array(np.float32(0.1), "floor"),
        numpy_helper.from_array(np.full((COEFFS, 3, 1, 1), 0.1, np.float32), "proto_w"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[0, 1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["anchors", "nothing"], [pred]),
        helper.make_node(
            "AveragePool", ["images"], ["pooled"], kernel_shape=[PROTO_STRIDE] * 2, strides=[PROTO_STRIDE] * 2
        ),
        helper.make_node("Conv", ["pooled", "proto_w"], ["mixed"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["mixed"], ["positive"]),
        helper.make_node("Add", ["positive", "floor"], [protos]),
    ]
    outputs = [
        helper.make_tensor_value_info(pred, TensorProto.FLOAT, [1, 4 + nc + COEFFS, len(ANCHORS)]),
        helper.make_tensor_value_info(protos, TensorProto.FLOAT, [1, COEFFS, p, p]),
    ]
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    return _model(nodes, [image], outputs[::-1] if swap else outputs, inits, "yolov8_seg")


def ultralytics_props(size: int = 128) -> dict[str, str]:
    """The metadata_props ultralytics writes into its ONNX exports (no prodseg keys)."""
    names = dict(enumerate(NAMES[1:]))
    return {"names": str(names), "imgsz": str([size, size]), "task": "segment", "stride": "32"}


def save(model: onnx.ModelProto, path: Path, meta: ArtifactMetadata | None = None) -> Path:
    """Write the model to path, with meta as its metadata_props (None: none)."""
    set_props(model, meta.to_props() if meta is not None else {})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_semantic(
    path: Path, arch: str = "deeplabv3plus", size: tuple[int, int] = (64, 96), **fields: object
) -> Path:
    """The semantic model with prodseg metadata at path."""
    return save(semantic_onnx(size), path, semantic_metadata(arch, size, **fields))


def write_yolo_seg(path: Path, size: int = 128, ultralytics_meta: bool = False) -> Path:
    """The YOLOv8-seg model at path, with prodseg metadata or (ultralytics_meta) ultralytics' own."""
    model = yolo_seg_onnx(size)
    if ultralytics_meta:
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(set_props(model, ultralytics_props(size)), str(path))
        return path
    return save(model, path, yolo_metadata(size))


def to_openvino(onnx_path: Path, meta: ArtifactMetadata, xml_path: Path | None = None) -> Path:
    """OpenVINO IR (FP32 weights) of an ONNX file with meta as its sidecar; default name <stem>_ir.xml."""
    import openvino as ov

    xml = xml_path or onnx_path.with_name(onnx_path.stem + "_ir.xml")
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    write_sidecar(xml, meta)
    return xml


def stripes_rgb(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(an RGB image of four vertical colour stripes, the label map the semantic model gives it)."""
    h, w = size
    image, labels = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
    for i, (color, label) in enumerate(COLOR_CLASSES.items()):
        cols = slice(i * w // 4, (i + 1) * w // 4)
        image[:, cols], labels[:, cols] = color, label
    return image, labels


def yolo_label_map(size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """The label map of YOLO_EXPECTED on a frame `scale` times the input (least confident painted first)."""
    labels = np.zeros(size, np.uint8)
    for class_id, _, box in reversed(YOLO_EXPECTED):
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        labels[y0:y1, x0:x1] = class_id
    return labels

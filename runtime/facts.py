"""Facts about an artifact that need no backend: its backend by suffix, its files and size, its outputs.

Sizes are in MB = 10^6 bytes everywhere in prodseg (file sizes, memory, bench JSON).
Outputs are recognised by their shapes alone, never by name or order: exporters name them freely
(ultralytics' OpenVINO IR has no output names at all) and list them in any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prodseg.errors import BadInput

MB = 1_000_000  # bytes; never 2**20

SUFFIX_BACKENDS = {
    ".onnx": "onnxruntime",
    ".xml": "openvino",
    ".engine": "tensorrt",
    ".plan": "tensorrt",
    ".pt": "torch",
}
# Files that belong to an artifact (an OpenVINO IR is the .xml plus its .bin weights).
COMPANIONS = {".xml": (".bin",)}
YOLO_MASK_COEFFS = 32  # YOLOv8-seg prototype channels
# The names prodseg gives its models' tensors (readers match outputs by shape, not by these names);
# YOLOv8-seg keeps ultralytics' names so its tools read prodseg's files.
INPUT_NAME = "images"
OUTPUT_NAMES: dict[str, list[str]] = {"semantic_logits": ["logits"], "yolo_seg": ["output0", "output1"]}

Shape = Sequence[int | str]  # symbolic (dynamic) dimensions are strings


def artifact_files(artifact: str | Path) -> list[Path]:
    """The artifact file and those of its companions that exist."""
    path = Path(artifact)
    companions = COMPANIONS.get(path.suffix.lower(), ())
    return [path] + [c for ext in companions if (c := path.with_suffix(ext)).is_file()]


def size_mb(artifact: str | Path) -> float:
    """Size of an artifact with its companions, in MB (10^6 bytes)."""
    return sum(f.stat().st_size for f in artifact_files(artifact) if f.is_file()) / MB


@dataclass(frozen=True)
class OutputLayout:
    """What a model's outputs are: the output kind, which output plays which role, the class count.

    roles: role -> index into the outputs ('logits' for semantic; 'pred' and 'protos' for yolo_seg).
    num_classes: logits channels (semantic) or nc (YOLO, without background); None while symbolic.
    """

    kind: str
    roles: dict[str, int] = field(default_factory=dict)
    num_classes: int | None = None


def _dim(shape: Shape, axis: int) -> int | None:
    value = shape[axis]
    return value if isinstance(value, int) and value > 0 else None


def _semantic(shapes: list[Shape]) -> OutputLayout | None:
    if len(shapes) == 1 and len(shapes[0]) == 4:
        return OutputLayout("semantic_logits", {"logits": 0}, _dim(shapes[0], 1))
    return None


def _yolo_seg(shapes: list[Shape]) -> OutputLayout | None:
    ranks = sorted((len(s), i) for i, s in enumerate(shapes))
    if len(shapes) != 2 or [r for r, _ in ranks] != [3, 4]:
        return None
    pred, protos = shapes[ranks[0][1]], shapes[ranks[1][1]]
    channels, coeffs = _dim(pred, 1), _dim(protos, 1)
    if coeffs is not None and coeffs != YOLO_MASK_COEFFS:
        return None
    nc = channels - 4 - YOLO_MASK_COEFFS if channels is not None else None
    if nc is not None and nc < 1:
        return None
    return OutputLayout("yolo_seg", {"pred": ranks[0][1], "protos": ranks[1][1]}, nc)


# Tried in order; the first that recognises the shapes wins.
LAYOUTS = (_semantic, _yolo_seg)


def classify_outputs(shapes: Sequence[Shape], source: str = "model") -> OutputLayout:
    """The OutputLayout of outputs with these shapes; BadInput naming the shapes when none fits."""
    shapes = [tuple(s) for s in shapes]
    for layout in LAYOUTS:
        found = layout(shapes)
        if found is not None:
            return found
    shown = ", ".join(str(tuple(s)) for s in shapes) or "none"
    k = YOLO_MASK_COEFFS
    raise BadInput(
        f"{source}: outputs of shapes {shown} are neither semantic logits (one (1, C, H, W) "
        f"tensor) nor YOLOv8-seg ((1, 4+nc+{k}, N) and (1, {k}, h, w)); prodseg runs only these "
        "two kinds of segmentation model"
    )

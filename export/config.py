"""ExportConfig: everything one `prodseg-export` run needs, validated before any work starts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from prodseg.errors import BadInput, require
from prodseg.metadata import ArtifactMetadata

FORMATS = ("onnx", "fp16", "int8", "openvino", "trt")
CALIB_METHODS = ("minmax", "entropy", "percentile")
MIN_OPSET = 17
SIZE_MULTIPLE = 32  # the networks' stride: the input size every exported model accepts


def max_opset() -> int:
    """The newest opset both torch's TorchScript exporter and the installed onnx know."""
    onnx = require("onnx", "export")
    try:  # torch keeps its exporter's limit in a private module: fall back to onnx's when it moves
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:
        return int(onnx.defs.onnx_opset_version())
    return min(int(ONNX_MAX_OPSET), int(onnx.defs.onnx_opset_version()))


def _near(value: int) -> int:
    return max(SIZE_MULTIPLE, round(value / SIZE_MULTIPLE) * SIZE_MULTIPLE)


@dataclass
class Thresholds:
    """Verification gates, as fractions: label-map agreement with PyTorch and the INT8 mIoU drop."""

    fp32_agreement: float = 0.999
    fp16_agreement: float = 0.995
    bf16_agreement: float = 0.99
    int8_delta_miou: float = 0.01


@dataclass
class ExportConfig:
    """Options of one export run; `formats` is the set of requested artifact families."""

    checkpoint: Path
    out: Path | None = None
    formats: tuple[str, ...] = ("onnx",)
    calib_data: Path | None = None
    calib_images: int = 300
    calib_method: str = "minmax"
    dynamic_batch: bool = False
    # Exported input HxW (None: the training size); dynamic: H and W (and batch) are dynamic axes, and
    # the metadata's input size is the nominal one that runs (and verification) use unless told otherwise.
    input_size: tuple[int, int] | None = None
    dynamic: bool = False
    verify: bool = True
    verify_images: int = 16
    strict: bool = False
    opset: int = MIN_OPSET
    thresholds: Thresholds = field(default_factory=Thresholds)
    # INT8 activation type for the QDQ ONNX: u8 measured fastest on OpenVINO (README, "INT8 measurement").
    int8_activations: str = "uint8"
    trt_max_batch: int = 1
    trt_workspace_mib: int = 1024

    def __post_init__(self) -> None:
        self.checkpoint = Path(self.checkpoint)
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise BadInput(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
        if self.calib_method not in CALIB_METHODS:
            raise BadInput(f"--calib-method {self.calib_method!r}: choose one of {', '.join(CALIB_METHODS)}")
        if not MIN_OPSET <= self.opset <= max_opset():
            raise BadInput(
                f"--opset {self.opset}: choose an opset from {MIN_OPSET} to {max_opset()} "
                "(what this torch can export)"
            )
        if self.input_size is not None and (
            min(self.input_size) < SIZE_MULTIPLE or any(v % SIZE_MULTIPLE for v in self.input_size)
        ):
            h, w = self.input_size
            raise BadInput(
                f"--input-size {h}x{w}: height and width must be multiples of {SIZE_MULTIPLE} "
                f"(the networks' stride), e.g. {_near(h)}x{_near(w)}"
            )
        for flag, n in (("--calib-images", self.calib_images), ("--verify-images", self.verify_images)):
            if n < 1:
                raise BadInput(f"{flag} {n}: must be at least 1")
        if not math.isfinite(self.thresholds.int8_delta_miou):
            raise BadInput(
                f"--int8-delta-miou {100 * self.thresholds.int8_delta_miou}: must be a finite "
                "number of mIoU points (e.g. 1.0)"
            )
        self.check_combinations()

    def check_combinations(self) -> None:
        """Flags that contradict each other: refused rather than silently ignored."""
        if self.strict and not self.verify:
            raise BadInput("--strict: gates on verification, which --no-verify turns off; drop one of them")
        if self.dynamic and self.wants("trt"):
            raise BadInput(
                "--dynamic: TensorRT engines are built for one input size here; export the "
                "engines without --dynamic (at --input-size) or drop --trt"
            )

    def artifact_meta(self, meta: ArtifactMetadata) -> ArtifactMetadata:
        """The metadata every artifact of this export carries: the exported (or nominal) input size."""
        changes: dict = {"input_size": list(self.input_size)} if self.input_size is not None else {}
        if self.dynamic:
            changes["extra"] = {**meta.extra, "dynamic_hw": True}
        return dataclasses.replace(meta, **changes) if changes else meta

    @property
    def out_dir(self) -> Path:
        """The artifact folder: --out, else `<checkpoint dir>/export`."""
        return Path(self.out) if self.out is not None else self.checkpoint.parent / "export"

    def wants(self, fmt: str) -> bool:
        return fmt in self.formats

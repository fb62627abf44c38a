"""ExportConfig: everything one `prodseg-export` run needs, validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prodseg.errors import BadInput

FORMATS = ("onnx", "fp16", "int8", "openvino", "trt")
CALIB_METHODS = ("minmax", "entropy", "percentile")
MIN_OPSET = 17


@dataclass
class Thresholds:
    """Verification gates: label-map agreement with PyTorch (%) and the INT8 mIoU drop (points)."""

    fp32_agreement: float = 99.9
    fp16_agreement: float = 99.5
    bf16_agreement: float = 99.0
    int8_delta_miou: float = 1.0


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
    verify: bool = True
    verify_images: int = 16
    strict: bool = False
    opset: int = MIN_OPSET
    thresholds: Thresholds = field(default_factory=Thresholds)
    # INT8 activation type for the QDQ ONNX: u8 measured fastest on OpenVINO (README, "INT8 measurement").
    int8_activations: str = "uint8"
    trt_max_batch: int = 1
    trt_calibrator: bool = False  # TensorRT 10 only: implicit INT8 (IInt8EntropyCalibrator2), FP32 ONNX
    trt_workspace_mib: int = 1024

    def __post_init__(self) -> None:
        self.checkpoint = Path(self.checkpoint)
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise BadInput(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
        if self.calib_method not in CALIB_METHODS:
            raise BadInput(f"--calib-method {self.calib_method!r}: choose one of {', '.join(CALIB_METHODS)}")
        if self.opset < MIN_OPSET:
            raise BadInput(f"--opset {self.opset}: opset {MIN_OPSET} or newer is required")
        if self.calib_images < 1 or self.verify_images < 1:
            raise BadInput("--calib-images and --verify-images must be at least 1")

    @property
    def out_dir(self) -> Path:
        """The artifact folder: --out, else `<checkpoint dir>/export`."""
        return Path(self.out) if self.out is not None else self.checkpoint.parent / "export"

    def wants(self, fmt: str) -> bool:
        return fmt in self.formats

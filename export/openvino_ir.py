"""OpenVINO IR: FP32 and FP16-compressed conversions of the ONNX, and INT8 through NNCF."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prodseg.atomic import atomic_dir
from prodseg.errors import require
from prodseg.export.calibration import CalibrationSet
from prodseg.metadata import ArtifactMetadata, write_sidecar
from prodseg.runtime.facts import INPUT_NAME

log = logging.getLogger(__name__)


def save_ir(ov_model: Any, folder: Path, meta: ArtifactMetadata, compress_to_fp16: bool = False) -> Path:
    """Write `folder/model.xml` (+ .bin, + model.json sidecar) atomically; return the .xml path."""
    ov = require("openvino", "openvino")
    with atomic_dir(folder) as tmp:
        ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=compress_to_fp16)
        write_sidecar(tmp / "model.xml", meta)
    log.info("wrote %s", folder / "model.xml")
    return folder / "model.xml"


def convert_ir(onnx_path: Path, folder: Path, meta: ArtifactMetadata, fp16: bool = False) -> Path:
    """Convert an ONNX file to IR; `fp16` compresses the weights (and says so in the metadata)."""
    ov = require("openvino", "openvino")
    model = ov.convert_model(str(onnx_path))
    return save_ir(model, folder, meta.with_precision("fp16") if fp16 else meta, compress_to_fp16=fp16)


def quantize_ir(onnx_path: Path, folder: Path, calib: CalibrationSet, meta: ArtifactMetadata) -> Path:
    """INT8 IR via NNCF post-training quantization on the same calibration images as the QDQ ONNX."""
    ov = require("openvino", "openvino")
    nncf = require("nncf", "export", "OpenVINO INT8 quantization")
    onnx = require("onnx", "export")
    from prodseg.export.onnx_int8 import head_nodes

    # The same float head as the QDQ ONNX (classifier, YOLO decode): OpenVINO keeps ONNX node names.
    head = head_nodes(onnx.load(str(onnx_path), load_external_data=False))
    model = ov.convert_model(str(onnx_path))
    feeds = [feed[INPUT_NAME] for feed in calib]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(feeds),
        subset_size=len(feeds),
        preset=nncf.QuantizationPreset.MIXED,
        ignored_scope=nncf.IgnoredScope(names=head, validate=False),
    )
    int8_meta = meta.with_precision("int8")
    int8_meta.extra = {
        **meta.extra,
        "calib_method": "nncf",
        "calib_images": len(feeds),
        "float_head_nodes": len(head),
    }
    return save_ir(quantized, folder, int8_meta)


def ir_from_qdq(qdq_onnx: Path, folder: Path, meta: ArtifactMetadata) -> Path:
    """INT8 IR converted from the QDQ ONNX (OpenVINO folds its FakeQuantize ranges)."""
    int8_meta = meta.with_precision("int8")
    int8_meta.extra = {**meta.extra, "calib_method": "qdq-onnx"}
    return convert_ir(qdq_onnx, folder, int8_meta)

"""INT8 QDQ ONNX: ONNX Runtime static quantization calibrated on real images, ranges cached as JSON.

Two schemes share one calibration: u8 asymmetric activations for ONNX Runtime / OpenVINO on CPU, and
the symmetric form TensorRT's ONNX parser accepts (int8, zero point 0, float biases).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodseg.atomic import atomic_path
from prodseg.errors import require
from prodseg.export.calibration import CalibrationSet, ort_reader
from prodseg.export.files import CALIB_CACHE
from prodseg.export.onnx_fp32 import stamp_and_check
from prodseg.metadata import ArtifactMetadata, file_sha256

log = logging.getLogger(__name__)

METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
# Activation scheme -> (onnxruntime QuantType of activations, extra quantize_static options).
SCHEMES: dict[str, tuple[str, dict[str, bool]]] = {
    "uint8": ("QUInt8", {}),
    "int8": ("QInt8", {}),
    # TensorRT's ONNX parser takes only int8 with zero point 0, and no int32 DequantizeLinear (the
    # quantized biases ONNX Runtime would write): symmetric activations and weights, biases in float.
    "int8-symmetric": (
        "QInt8",
        {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    ),
}
# Ops walked through from a graph output back to (and including) the last Conv: the classifier and
# the YOLO decode (sigmoid scores concatenated with pixel boxes cannot share one int8 scale).
HEAD_STOP_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass
class Int8Result:
    path: Path
    cache: Path
    reused_cache: bool
    excluded_nodes: list[str]


def name_nodes(model: Any) -> None:
    """Give every node a unique name: quantization options address nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def head_nodes(model: Any) -> list[str]:
    """Nodes from each graph output back to the nearest Conv/Gemm (inclusive): kept in float."""
    producer = {out: node for node in model.graph.node for out in node.output}
    stack = [o.name for o in model.graph.output]
    found: dict[str, None] = {}
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in found:
            continue
        found[node.name] = None
        if node.op_type not in HEAD_STOP_OPS:
            stack.extend(i for i in node.input if i)
    return list(found)


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs every bias copy on the root logger at INFO: hide that chatter."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(
    fp32_onnx: Path,
    target: Path,
    calib: CalibrationSet,
    meta: ArtifactMetadata,
    method: str = "minmax",
    activations: str = "uint8",
    cache_dir: Path | None = None,
) -> Int8Result:
    """Calibrate (or reuse cached ranges) and write a QDQ INT8 ONNX with per-channel int8 weights.

    `activations` names the scheme (SCHEMES). The cached ranges are the float tensors' min/max (or
    histograms) of the FP32 graph, whatever integer type they are later mapped to, so every scheme
    of one model, image list and method reads the same cache: one calibration pass serves them all.
    """
    onnx = require("onnx", "export")
    q = require("onnxruntime.quantization", "export", "INT8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cache_dir = cache_dir or target.parent / CALIB_CACHE
    cache_dir.mkdir(parents=True, exist_ok=True)
    quant_type, scheme_options = SCHEMES[activations]
    key = calib.cache_key(file_sha256(fp32_onnx), method)
    cache = cache_dir / f"{fp32_onnx.stem}.{method}.{key}.json"
    reused = cache.is_file()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8.") as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(fp32_onnx), str(prepped), skip_symbolic_shape=True)
        model = onnx.load(str(prepped))
        name_nodes(model)
        onnx.save(model, str(prepped))
        excluded = head_nodes(model)
        with atomic_path(target) as out, quiet_root_logger():
            q.quantize_static(
                str(prepped),
                str(out),
                calibration_data_reader=None if reused else ort_reader(calib),
                quant_format=q.QuantFormat.QDQ,
                per_channel=True,
                activation_type=getattr(q.QuantType, quant_type),
                weight_type=q.QuantType.QInt8,
                nodes_to_exclude=excluded,
                calibrate_method=getattr(q.CalibrationMethod, METHODS[method]),
                calibration_cache_path=str(cache),
                # Chunks bound memory: histogram calibrators keep every activation of a chunk.
                # (CalibMaxIntermediateOutputs would silently drop data in ORT 1.32.)
                extra_options={"CalibStridedMinMax": calib.chunk(), **scheme_options},
            )
            int8_meta = meta.with_precision("int8")
            int8_meta.extra = {
                **meta.extra,
                "calib_method": method,
                "calib_images": len(calib),
                "activations": activations,
                "excluded_nodes": len(excluded),
            }
            onnx.save(stamp_and_check(onnx.load(str(out)), int8_meta), str(out))
    how = "cached ranges" if reused else f"{len(calib)} images"
    log.info("wrote %s (%s calibration, %s)", target, method, how)
    return Int8Result(target, cache, reused, excluded)

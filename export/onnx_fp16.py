"""ONNX FP16: a float16 graph with float32 I/O for GPU runtimes and TensorRT's strongly-typed mode.

The converter is onnxruntime's maintained fork of onnxconverter_common's `float16` module:
onnxconverter_common 1.16 fails on DeepLabV3+ with keep_io_types=True ("The downstream node of the
second cast node should be graph output", the final Resize feeds the graph output), and converting
Resize itself breaks its float32 `scales` input. The fork handles both; it leaves nodes unsorted, so
the graph is topologically sorted before the checker runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prodseg.errors import require
from prodseg.export.onnx_fp32 import save_checked
from prodseg.metadata import ArtifactMetadata

log = logging.getLogger(__name__)

# Reductions and exponentials overflow or lose precision in float16 (YOLO's DFL softmax, norms).
FP32_OPS = ("Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Exp", "Log")


def convert_fp16(fp32_onnx: Path, target: Path, meta: ArtifactMetadata) -> Path:
    """Write the float16 version of `fp32_onnx` to `target` (float32 inputs/outputs kept)."""
    onnx = require("onnx", "export")
    require("onnxruntime", "export", "FP16 conversion")
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = convert_float_to_float16(
        onnx.load(str(fp32_onnx)), keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP32_OPS]
    )
    OnnxModel(model).topological_sort()
    save_checked(model, target, meta.with_precision("fp16"))
    log.info("wrote %s", target)
    return target

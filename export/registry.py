"""The exporter registry: format name -> function(ctx) that writes that family's artifacts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from prodseg.export.artifacts import Artifact, ExportContext
from prodseg.export.config import ExportConfig
from prodseg.export.files import CALIB_CACHE, TRT_TIMING_CACHE
from prodseg.runtime.facts import INPUT_NAME


def export_onnx_fp32(ctx: ExportContext) -> list[Artifact]:
    from prodseg.export.onnx_fp32 import export_onnx

    cfg = ctx.config
    path = export_onnx(
        ctx.source,
        ctx.out / "model.onnx",
        opset=cfg.opset,
        dynamic_batch=cfg.dynamic_batch,
        dynamic=cfg.dynamic,
    )
    return [ctx.add(Artifact("onnx", path, "fp32"))]


def export_onnx_fp16(ctx: ExportContext) -> list[Artifact]:
    from prodseg.export.onnx_fp16 import convert_fp16

    path = convert_fp16(ctx.path("onnx"), ctx.out / "model_fp16.onnx", ctx.source.meta)
    return [ctx.add(Artifact("onnx_fp16", path, "fp16"))]


def export_onnx_int8(ctx: ExportContext) -> list[Artifact]:
    from prodseg.export.onnx_int8 import quantize_int8

    cfg = ctx.config
    res = quantize_int8(
        ctx.path("onnx"),
        ctx.out / "model_int8.onnx",
        ctx.calibration,
        ctx.source.meta,
        method=cfg.calib_method,
        activations=cfg.int8_activations,
    )
    info = {
        "calib_method": cfg.calib_method,
        "calib_images": len(ctx.calibration),
        "calib_cache": str(res.cache.relative_to(ctx.out)),
        "calib_cache_reused": res.reused_cache,
        "excluded_nodes": res.excluded_nodes,
    }
    return [ctx.add(Artifact("onnx_int8", res.path, "int8", info))]


def export_openvino(ctx: ExportContext) -> list[Artifact]:
    from prodseg.export.openvino_ir import convert_ir, quantize_ir

    meta, onnx = ctx.source.meta, ctx.path("onnx")
    fp32 = convert_ir(onnx, ctx.out / "openvino", meta)
    fp16 = convert_ir(onnx, ctx.out / "openvino_fp16", meta, fp16=True)
    out = [ctx.add(Artifact("openvino", fp32, "fp32")), ctx.add(Artifact("openvino_fp16", fp16, "fp16"))]
    if ctx.config.wants("int8"):
        path = quantize_ir(onnx, ctx.out / "openvino_int8", ctx.calibration, meta)
        out.append(ctx.add(Artifact("openvino_int8", path, "int8", {"calib_method": "nncf"})))
    return out


def input_batches(ctx: ExportContext) -> Iterator[np.ndarray]:
    """Calibration input tensors, produced only when TensorRT's calibrator asks for them."""
    for feed in ctx.calibration:
        yield feed[INPUT_NAME]


def export_trt(ctx: ExportContext) -> list[Artifact]:
    from prodseg.export.trt import EngineSpec, build_engine

    cfg = ctx.config
    wanted = [p for p in ("fp16", "int8") if cfg.wants(p)] or ["fp32"]
    sources = {
        "fp32": ("onnx", "model.engine"),
        "fp16": ("onnx_fp16", "model_fp16.engine"),
        "int8": ("onnx_int8", "model_int8.engine"),
    }
    out = []
    for precision in wanted:
        onnx_name, engine = sources[precision]
        spec = EngineSpec(
            ctx.path(onnx_name),
            ctx.out / engine,
            precision,
            max_batch=cfg.trt_max_batch,
            workspace_mib=cfg.trt_workspace_mib,
            timing_cache=ctx.out / TRT_TIMING_CACHE,
        )
        if precision == "int8" and cfg.trt_calibrator:
            spec.onnx = ctx.path("onnx")
            spec.calibrator_feeds = input_batches(ctx)
            spec.calibration_cache = ctx.out / CALIB_CACHE / "model_int8.trt.calib"
        out.append(ctx.add(Artifact(f"trt_{precision}", build_engine(spec, ctx.source.meta), precision)))
    return out


def trt_inputs(cfg: ExportConfig) -> tuple[str, ...]:
    """The ONNX files the requested engines are built from (the INT8 engine: the QDQ model, or FP32 for
    TensorRT 10's calibrator)."""
    wanted = [p for p in ("fp16", "int8") if cfg.wants(p)]
    return ("onnx", *(w for w in wanted if not (w == "int8" and cfg.trt_calibrator)))


# The export plan: each family's function, what it writes, and the families whose files it reads.
# pipeline.export_order runs a family only after its inputs, whatever order the user gave.
EXPORTERS: dict[str, Callable[[ExportContext], list[Artifact]]] = {
    "onnx": export_onnx_fp32,
    "fp16": export_onnx_fp16,
    "int8": export_onnx_int8,
    "openvino": export_openvino,
    "trt": export_trt,
}
WRITES: dict[str, str] = {
    "onnx": "model.onnx (FP32)",
    "fp16": "model_fp16.onnx",
    "int8": "model_int8.onnx (INT8 QDQ, calibrated)",
    "openvino": "openvino/ (FP32 IR), openvino_fp16/ (+ openvino_int8/ with --int8, NNCF)",
    "trt": "TensorRT engines",
}
NEEDS: dict[str, Callable[[ExportConfig], tuple[str, ...]]] = {
    "onnx": lambda cfg: (),
    "fp16": lambda cfg: ("onnx",),
    "int8": lambda cfg: ("onnx",),
    "openvino": lambda cfg: ("onnx",),  # NNCF quantizes the FP32 ONNX with the same calibration images
    "trt": trt_inputs,
}

"""The exporter registry: format name -> function(ctx) that writes that family's artifacts."""

from __future__ import annotations

from collections.abc import Callable

from prodseg.export.artifacts import Artifact, ExportContext
from prodseg.export.config import ExportConfig
from prodseg.export.files import TRT_TIMING_CACHE


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


def quantized_onnx(ctx: ExportContext, name: str, file: str, scheme: str) -> list[Artifact]:
    """One QDQ INT8 ONNX of the FP32 model in activation `scheme`; every scheme reads one range cache."""
    from prodseg.export.onnx_int8 import quantize_int8

    cfg = ctx.config
    res = quantize_int8(
        ctx.path("onnx"),
        ctx.out / file,
        ctx.calibration,
        ctx.source.meta,
        method=cfg.calib_method,
        activations=scheme,
    )
    info = {
        "calib_method": cfg.calib_method,
        "calib_images": len(ctx.calibration),
        "calib_cache": str(res.cache.relative_to(ctx.out)),
        "calib_cache_reused": res.reused_cache,
        "activations": scheme,
        "excluded_nodes": res.excluded_nodes,
    }
    return [ctx.add(Artifact(name, res.path, "int8", info))]


def export_onnx_int8(ctx: ExportContext) -> list[Artifact]:
    return quantized_onnx(ctx, "onnx_int8", "model_int8.onnx", ctx.config.int8_activations)


def export_onnx_int8_trt(ctx: ExportContext) -> list[Artifact]:
    """The TensorRT INT8 engine's source: TensorRT's parser accepts only symmetric int8 QDQ."""
    return quantized_onnx(ctx, "onnx_int8_trt", "model_int8_trt.onnx", "int8-symmetric")


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


# Engine precision -> (the export family that writes its source ONNX, that artifact, the engine file).
ENGINES: dict[str, tuple[str, str, str]] = {
    "fp32": ("onnx", "onnx", "model.engine"),
    "fp16": ("fp16", "onnx_fp16", "model_fp16.engine"),
    "int8": ("int8_trt", "onnx_int8_trt", "model_int8.engine"),
}


def engine_precisions(cfg: ExportConfig) -> list[str]:
    """The engines --trt builds: one per requested --fp16/--int8, else FP32."""
    return [p for p in ("fp16", "int8") if cfg.wants(p)] or ["fp32"]


def export_trt(ctx: ExportContext) -> list[Artifact]:
    from prodseg.export.trt import EngineSpec, build_engine

    cfg = ctx.config
    out = []
    for precision in engine_precisions(cfg):
        _, onnx_name, engine = ENGINES[precision]
        spec = EngineSpec(
            ctx.path(onnx_name),
            ctx.out / engine,
            precision,
            max_batch=cfg.trt_max_batch,
            workspace_mib=cfg.trt_workspace_mib,
            timing_cache=ctx.out / TRT_TIMING_CACHE,
        )
        out.append(ctx.add(Artifact(f"trt_{precision}", build_engine(spec, ctx.source.meta), precision)))
    return out


def trt_inputs(cfg: ExportConfig) -> tuple[str, ...]:
    """The families whose ONNX the requested engines are built from (always FP32: the rest derive from it)."""
    return tuple(dict.fromkeys(["onnx", *(ENGINES[p][0] for p in engine_precisions(cfg))]))


# The export plan: each family's function, what it writes, and the families whose files it reads.
# pipeline.export_order runs a family only after its inputs, whatever order the user gave.
EXPORTERS: dict[str, Callable[[ExportContext], list[Artifact]]] = {
    "onnx": export_onnx_fp32,
    "fp16": export_onnx_fp16,
    "int8": export_onnx_int8,
    "int8_trt": export_onnx_int8_trt,  # not a user format: only the INT8 engine asks for it
    "openvino": export_openvino,
    "trt": export_trt,
}
WRITES: dict[str, str] = {
    "onnx": "model.onnx (FP32)",
    "fp16": "model_fp16.onnx",
    "int8": "model_int8.onnx (INT8 QDQ, calibrated)",
    "int8_trt": "model_int8_trt.onnx (INT8 QDQ, symmetric int8 for TensorRT, same calibration)",
    "openvino": "openvino/ (FP32 IR), openvino_fp16/ (+ openvino_int8/ with --int8, NNCF)",
    "trt": "TensorRT engines",
}
NEEDS: dict[str, Callable[[ExportConfig], tuple[str, ...]]] = {
    "onnx": lambda cfg: (),
    "fp16": lambda cfg: ("onnx",),
    "int8": lambda cfg: ("onnx",),
    "int8_trt": lambda cfg: ("onnx",),
    "openvino": lambda cfg: ("onnx",),  # NNCF quantizes the FP32 ONNX with the same calibration images
    "trt": trt_inputs,
}

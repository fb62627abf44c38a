"""`prodseg-export CHECKPOINT [--onnx] [--fp16] [--int8] [--openvino] [--trt] ...`: flags -> ExportConfig."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from prodseg.cli import OneLineUsage, handle_errors, setup_logging
from prodseg.errors import BadInput
from prodseg.export.config import CALIB_METHODS, ExportConfig, Thresholds
from prodseg.runtime.model_options import parse_input_size

# Options that only act together with other flags: given without them they would be silently ignored.
# name -> (when it has no effect, the remedy, whether the other flags make it act)
ONLY_WITH: dict[str, tuple[str, str, Callable[[dict[str, Any]], bool]]] = {
    "calib_images": ("without --int8", "add --int8 or drop it", lambda p: p["int8"]),
    "calib_method": ("without --int8", "add --int8 or drop it", lambda p: p["int8"]),
    "int8_delta_miou": (
        "without --int8 and verification",
        "add --int8 (without --no-verify) or drop it",
        lambda p: p["int8"] and not p["no_verify"],
    ),
    "verify_images": ("with --no-verify", "drop one of them", lambda p: not p["no_verify"]),
    "calib_data": (
        "with --no-verify and without --int8",
        "add --int8, drop --no-verify, or drop it",
        lambda p: p["int8"] or not p["no_verify"],
    ),
}


def check_flag_combinations(ctx: click.Context) -> None:
    """BadInput for an option given on the command line whose companion flag is missing."""
    for name, (when, remedy, acts) in ONLY_WITH.items():
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE and not acts(ctx.params):
            raise BadInput(f"--{name.replace('_', '-')}: has no effect {when}; {remedy}")


@click.command(cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), help="Artifact folder [default: <checkpoint dir>/export]."
)
@click.option("--onnx", is_flag=True, help="ONNX FP32 model.onnx (the default when no format is given).")
@click.option("--fp16", is_flag=True, help="ONNX FP16 model_fp16.onnx (and FP16 engines with --trt).")
@click.option(
    "--int8",
    is_flag=True,
    help="Calibrated INT8 QDQ model_int8.onnx (+ NNCF INT8 IR with --openvino; with --trt the INT8 "
    "engine, built from a symmetric model_int8_trt.onnx).",
)
@click.option("--openvino", is_flag=True, help="OpenVINO IR: openvino/ (FP32) and openvino_fp16/.")
@click.option("--trt", is_flag=True, help="TensorRT engines (needs TensorRT and an NVIDIA GPU).")
@click.option(
    "--calib-data",
    type=click.Path(path_type=Path),
    help="Dataset (or image folder) for calibration and verification "
    "[default: the checkpoint config's dataset].",
)
@click.option(
    "--calib-images", default=300, show_default=True, help="Calibration images (capped to what exists)."
)
@click.option("--calib-method", type=click.Choice(CALIB_METHODS), default="minmax", show_default=True)
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch axis (H x W stay static).")
@click.option(
    "--input-size",
    default=None,
    metavar="HxW",
    help="Exported input size, multiples of 32 [default: the training size].",
)
@click.option(
    "--dynamic",
    is_flag=True,
    help="Dynamic batch, height and width (ONNX, OpenVINO); the metadata keeps the nominal size.",
)
@click.option("--no-verify", is_flag=True, help="Skip verification against PyTorch.")
@click.option("--verify-images", default=16, show_default=True, help="Held-out images to verify on.")
@click.option("--strict", is_flag=True, help="Exit 1 when an artifact misses its verification threshold.")
@click.option("--opset", default=17, show_default=True, help="ONNX opset (17 or newer).")
@click.option(
    "--int8-delta-miou",
    default=100 * Thresholds.int8_delta_miou,
    show_default=True,
    help="Largest allowed INT8 mIoU drop, in points (1.0 = one percentage point).",
)
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(
    checkpoint: Path,
    out: Path | None,
    onnx: bool,
    fp16: bool,
    int8: bool,
    openvino: bool,
    trt: bool,
    calib_data: Path | None,
    calib_images: int,
    calib_method: str,
    dynamic_batch: bool,
    input_size: str | None,
    dynamic: bool,
    no_verify: bool,
    verify_images: int,
    strict: bool,
    opset: int,
    int8_delta_miou: float,
    verbose: bool,
) -> None:
    """Export a prodseg checkpoint to ONNX / FP16 / INT8 / OpenVINO / TensorRT and verify every artifact."""
    setup_logging(verbose)
    check_flag_combinations(click.get_current_context())
    flags = {"onnx": onnx, "fp16": fp16, "int8": int8, "openvino": openvino, "trt": trt}
    formats = tuple(name for name, on in flags.items() if on) or ("onnx",)
    cfg = ExportConfig(
        checkpoint=checkpoint,
        out=out,
        formats=formats,
        calib_data=calib_data,
        calib_images=calib_images,
        calib_method=calib_method,
        dynamic_batch=dynamic_batch,
        input_size=parse_input_size(input_size) if input_size is not None else None,
        dynamic=dynamic,
        verify=not no_verify,
        verify_images=verify_images,
        strict=strict,
        opset=opset,
        thresholds=Thresholds(int8_delta_miou=int8_delta_miou / 100),
    )
    from prodseg.export.pipeline import run_export

    result = run_export(cfg)
    click.echo(f"wrote {len(result.artifacts)} artifacts and {result.manifest}")


if __name__ == "__main__":
    main()

"""ONNX FP32: torch.onnx.export (TorchScript exporter), onnxslim, full checker pass, metadata_props."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prodseg.atomic import atomic_path
from prodseg.errors import require
from prodseg.export.source import ExportSource
from prodseg.metadata import ArtifactMetadata
from prodseg.runtime.facts import INPUT_NAME

log = logging.getLogger(__name__)

# Axes that --dynamic leaves free, per tensor name (the channel axes stay fixed: classes, coefficients).
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
    "logits": {0: "batch", 2: "height", 3: "width"},
    "output0": {0: "batch", 2: "anchors"},
    "output1": {0: "batch", 2: "mask_height", 3: "mask_width"},
}


def dynamic_axes(names: list[str], dynamic_batch: bool, dynamic: bool) -> dict[str, dict[int, str]] | None:
    """torch.onnx.export's dynamic_axes: batch only, batch and H/W, or none."""
    if dynamic:
        return {n: DYNAMIC_AXES[n] for n in [INPUT_NAME, *names]}
    return {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic_batch else None


def set_metadata(model: Any, meta: ArtifactMetadata) -> None:
    """Replace the prodseg.* entries of an ONNX ModelProto's metadata_props with `meta`."""
    onnx = require("onnx", "export")
    keep = [p for p in model.metadata_props if not p.key.startswith("prodseg.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in meta.to_props().items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


def stamp_and_check(model: Any, meta: ArtifactMetadata) -> Any:
    """Stamp prodseg metadata and run the full ONNX checker (shape inference included)."""
    onnx = require("onnx", "export")
    set_metadata(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def save_checked(model: Any, target: Path, meta: ArtifactMetadata) -> Path:
    """Stamp, check and save atomically (nothing under `target` on failure)."""
    onnx = require("onnx", "export")
    stamp_and_check(model, meta)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))
    return target


def export_onnx(
    source: ExportSource, target: Path, opset: int = 17, dynamic_batch: bool = False, dynamic: bool = False
) -> Path:
    """Export the checkpoint's export module to a simplified, checked FP32 ONNX at `target`, traced at
    the metadata's input size; `dynamic` leaves batch, height and width free."""
    torch = require("torch", "train")
    onnx = require("onnx", "export")
    onnxslim = require("onnxslim", "export")
    module = source.export_module()
    h, w = source.input_size
    dummy = torch.zeros(1, 3, h, w)
    names = source.output_names
    axes = dynamic_axes(names, dynamic_batch, dynamic)
    with atomic_path(target) as tmp:
        with torch.no_grad():
            torch.onnx.export(
                module,
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=names,
                opset_version=opset,
                dynamic_axes=axes,
                do_constant_folding=True,
                dynamo=False,
            )
        model = stamp_and_check(onnxslim.slim(onnx.load(str(tmp))), source.meta)
        onnx.save(model, str(tmp))
    log.info("wrote %s", target)
    return target

"""Torch-free inference: `load(artifact)` -> Predictor over ONNX Runtime, OpenVINO, TensorRT or torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata
from prodseg.runtime.artifact import find_metadata, missing_metadata
from prodseg.runtime.facts import SUFFIX_BACKENDS, OutputLayout, classify_outputs
from prodseg.runtime.model_options import DESCRIBE, ModelSpec, class_ids, resolve_metadata
from prodseg.runtime.predictor import Predictor
from prodseg.runtime.runners import RUNNERS, Runner, auto_backend, runner_class
from prodseg.runtime.types import Detection, FrameContext, Prediction


def resolve_artifact(artifact: str | Path) -> Path:
    """The model file: the path, or the one .xml/.onnx in a folder (ultralytics' OpenVINO export)."""
    path = Path(artifact)
    if path.is_dir():
        found = sorted(path.glob("*.xml")) or sorted(path.glob("*.onnx"))
        if len(found) != 1:
            raise BadInput(f"{path}: a folder must hold exactly one .xml or .onnx model, found {len(found)}")
        return found[0]
    if not path.is_file():
        raise BadInput(f"{path}: model file not found; pass an exported .onnx, .xml, .engine/.plan or .pt")
    return path


def choose_backend(path: Path, backend: str = "auto", device: str = "cpu") -> tuple[str, str, dict[str, Any]]:
    """(backend, why, runner options it needs): the one named, or for 'auto' the fastest installed one
    for the file on the device."""
    if backend != "auto":
        runner_class(backend)  # validates the name
        return backend, "named with --backend", {}
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_BACKENDS:
        raise BadInput(
            f"{path}: unknown artifact type '{suffix}'; expected one of "
            f"{', '.join(SUFFIX_BACKENDS)} (or name --backend: {', '.join(RUNNERS)})"
        )
    return auto_backend(suffix, device)


def backend_for(path: Path, backend: str = "auto", device: str = "cpu") -> str:
    """The backend named, or the fastest installed one for the file on the device ('auto')."""
    return choose_backend(path, backend, device)[0]


def _openvino_weights(path: Path) -> None:
    from prodseg.runtime.runners.openvino_runner import check_weights

    check_weights(path)


# Suffix -> a cheap check of the files beside the artifact, run before any backend loads it.
COMPANION_CHECKS = {".xml": _openvino_weights}


def check_artifact(artifact: str | Path, backend: str = "auto", device: str = "cpu") -> tuple[Path, str]:
    """(model file, backend) after the checks that need no backend: the file, its type, its companions."""
    path = resolve_artifact(artifact)
    name = backend_for(path, backend, device)
    check = COMPANION_CHECKS.get(path.suffix.lower())
    if check is not None:
        check(path)
    return path, name


def static_input_size(runner: Runner) -> tuple[int, int] | None:
    """The (H, W) of the model's one image input when both are fixed; None for dynamic ones."""
    inputs = list(runner.input_metadata.values())
    if len(inputs) != 1 or len(inputs[0][0]) != 4:
        return None  # the Predictor explains what is wrong with such inputs
    hw = inputs[0][0][2:]
    return (int(hw[0]), int(hw[1])) if all(isinstance(d, int) and d > 0 for d in hw) else None


def output_layout(runner: Runner, size: tuple[int, int] | None) -> OutputLayout | None:
    """What the outputs are, by shape: declared shapes, else one probe inference at `size` (None: no size)."""
    shapes = runner.output_shapes
    layout = classify_outputs(shapes, runner.path) if shapes else None
    if (layout is None or layout.num_classes is None) and size is not None:
        name, (_, dtype) = next(iter(runner.input_metadata.items()))
        probe = np.zeros((1, 3, *size), dtype if dtype in (np.float16, np.float32) else np.float32)
        outputs = runner.infer({name: probe})
        layout = classify_outputs([a.shape for a in outputs.values()], runner.path)
    return layout


def model_metadata(path: Path, runner: Runner, spec: ModelSpec) -> ArtifactMetadata:
    """The model's own metadata with the flags applied (model_options.resolve_metadata)."""
    found = find_metadata(path, runner)
    if found is None and (spec.task is None or spec.names is None):
        raise missing_metadata(path)
    static_hw = static_input_size(runner)
    layout = None
    if found is None or spec.given(DESCRIBE):  # check what the user states against the model itself
        size = static_hw or spec.input_size or (tuple(found.input_size) if found else None)
        layout = output_layout(runner, size)  # type: ignore[arg-type]
    return resolve_metadata(found, spec, layout, static_hw, path)


def load(
    artifact: str | Path,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    spec: ModelSpec | None = None,
    fuse_preprocess: bool = True,
    **runner_opts: Any,
) -> Predictor:
    """Open an artifact with its backend ('auto': the fastest installed for the file on the device),
    configured by its metadata and what `spec` (the model flags) states or overrides.

    fuse_preprocess: where the backend can, the model takes uint8 BGR pixels and normalises them itself.

    runner_opts go to the runner's typed options (an unknown one is BadInput): graph_optimization,
    allow_spinning, providers (onnxruntime); hint, inference_precision (openvino); cuda_graph
    (tensorrt); precision, channels_last (torch).
    """
    spec = spec or ModelSpec()
    path, _ = check_artifact(artifact, backend, device)
    name, why, auto_opts = choose_backend(path, backend, device)
    runner = runner_class(name)(str(path), device=device, threads=threads, **{**auto_opts, **runner_opts})
    runner.activate()
    try:
        meta = model_metadata(path, runner, spec)
        predictor = Predictor(
            runner,
            meta,
            name,
            keep=class_ids(meta, spec.classes),
            fixed_size=spec.input_size is not None,
            fuse_preprocess=fuse_preprocess,
        )
        predictor.backend_reason = why
        return predictor
    except BaseException:
        runner.deactivate()
        raise


__all__ = [
    "RUNNERS",
    "Detection",
    "FrameContext",
    "ModelSpec",
    "Prediction",
    "Predictor",
    "Runner",
    "check_artifact",
    "choose_backend",
    "load",
]

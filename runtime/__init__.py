"""Torch-free inference: `load(artifact)` -> Predictor over ONNX Runtime, OpenVINO, TensorRT or torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prodseg.errors import BadInput
from prodseg.runtime.artifact import read_metadata
from prodseg.runtime.predictor import Predictor
from prodseg.runtime.runners import RUNNERS, SUFFIX_BACKENDS, Runner, runner_class
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


def backend_for(path: Path, backend: str = "auto") -> str:
    """The backend named, or the one the file's suffix implies."""
    if backend != "auto":
        runner_class(backend)  # validates the name
        return backend
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_BACKENDS:
        raise BadInput(f"{path}: unknown artifact type '{suffix}'; expected one of "
                       f"{', '.join(SUFFIX_BACKENDS)} (or name --backend: {', '.join(RUNNERS)})")
    return SUFFIX_BACKENDS[suffix]


def _openvino_weights(path: Path) -> None:
    from prodseg.runtime.runners.openvino_runner import check_weights

    check_weights(path)


# Suffix -> a cheap check of the files beside the artifact, run before any backend loads it.
COMPANION_CHECKS = {".xml": _openvino_weights}


def check_artifact(artifact: str | Path, backend: str = "auto") -> tuple[Path, str]:
    """(model file, backend) after the checks that need no backend: the file, its type, its companions."""
    path = resolve_artifact(artifact)
    name = backend_for(path, backend)
    check = COMPANION_CHECKS.get(path.suffix.lower())
    if check is not None:
        check(path)
    return path, name


def load(artifact: str | Path, backend: str = "auto", device: str = "cpu", threads: int | None = None,
         **runner_opts: Any) -> Predictor:
    """Open an artifact with its backend; all configuration comes from the artifact's metadata.

    runner_opts go to the runner: graph_optimization, allow_spinning (onnxruntime), hint,
    inference_precision (openvino), cuda_graph (tensorrt), precision, channels_last (torch).
    """
    path, name = check_artifact(artifact, backend)
    runner = runner_class(name)(str(path), device=device, threads=threads, **runner_opts)
    runner.activate()
    try:
        meta = read_metadata(path, runner)
        return Predictor(runner, meta, name)
    except BaseException:
        runner.deactivate()
        raise


__all__ = ["RUNNERS", "Detection", "FrameContext", "Prediction", "Predictor", "Runner", "check_artifact",
           "load"]

"""Where a model's ArtifactMetadata comes from: prodseg props/sidecar, or ultralytics' own metadata."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from prodseg.data.taxonomy import default_colors
from prodseg.errors import BadInput
from prodseg.metadata import METADATA_PREFIX, ArtifactMetadata, read_sidecar, sidecar_path
from prodseg.runtime.runners.base import Runner
from prodseg.yamlio import read_yaml


def _literal(value: Any) -> Any:
    """Ultralytics stores Python reprs (`{0: 'a'}`, `[640, 640]`) as ONNX metadata strings."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def from_ultralytics(meta: dict[str, Any], source: str) -> ArtifactMetadata:
    """Map ultralytics' names/imgsz/task onto prodseg metadata: background 0, ultralytics cls c -> c + 1."""
    task = _literal(meta.get("task", ""))
    if task != "segment":
        raise BadInput(f"{source}: an ultralytics '{task}' model; prodseg runs 'segment' models only")
    names = _literal(meta["names"])
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    imgsz = _literal(meta.get("imgsz", [640, 640]))
    imgsz = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(v) for v in imgsz]
    class_names = ["background", *[str(n) for n in names]]
    return ArtifactMetadata(
        arch="yolov8_seg",
        class_names=class_names,
        class_colors=[list(c) for c in default_colors(len(class_names))],
        input_size=imgsz,
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        output_kind="yolo_seg",
        resize="letterbox",
        prodseg_version="",
        extra={"source": "ultralytics", "stride": _literal(meta.get("stride", 32))},
    )


def _onnx_file_props(path: Path) -> dict[str, str]:
    """metadata_props read with the onnx package when the running backend does not expose them."""
    try:
        import onnx
    except ImportError:
        return {}
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _is_ultralytics(d: dict[str, Any]) -> bool:
    return "names" in d and ("task" in d or "imgsz" in d)


def find_metadata(path: str | Path, runner: Runner) -> ArtifactMetadata | None:
    """Sidecar JSON (card), else the runner's embedded props (prodseg.* or ultralytics), else
    ultralytics' metadata.yaml beside the model; None when the model carries none of them."""
    path = Path(path)
    built = getattr(runner, "metadata", None)  # the torch runner builds it from the checkpoint
    if isinstance(built, ArtifactMetadata):
        return built
    if sidecar_path(path).is_file():
        return read_sidecar(path)
    props = runner.metadata_props() or (_onnx_file_props(path) if path.suffix == ".onnx" else {})
    if any(k.startswith(METADATA_PREFIX) for k in props):
        return ArtifactMetadata.from_props(props, str(path))
    if _is_ultralytics(props):
        return from_ultralytics(props, str(path))
    yml = path.parent / "metadata.yaml"
    if yml.is_file():
        data = read_yaml(yml, "ultralytics metadata.yaml") or {}
        if isinstance(data, dict) and _is_ultralytics(data):
            return from_ultralytics(data, str(yml))
    return None


def missing_metadata(path: str | Path) -> BadInput:
    """The error for a model without metadata prodseg can read: it names the flags that describe one."""
    return BadInput(
        f"{path}: has no prodseg metadata; describe the model with --task semantic|yolo-seg and --names "
        "a,b,... (or a classes.yaml), plus --input-size HxW for dynamic shapes, --mean/--std and --resize "
        f"when they differ from the task's defaults; add --save-card {sidecar_path(path)} to keep them"
    )


def read_metadata(path: str | Path, runner: Runner) -> ArtifactMetadata:
    """find_metadata, or BadInput naming the flags that describe a model without metadata."""
    meta = find_metadata(path, runner)
    if meta is None:
        raise missing_metadata(path)
    return meta

"""Artifact metadata: what every exported model carries so runtime and bench need no config file.

Stored as string key/values in ONNX `metadata_props` (values JSON-encoded) and as a JSON sidecar
(`<artifact>.json`) for OpenVINO IR and TensorRT engines. The same sidecar, written by
`--save-card`, is the "card" that describes a model exported elsewhere (any suffix); a sidecar beside
a model is read before anything the model embeds. Torch-free: the edge install reads it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from prodseg.errors import BadInput

OUTPUT_KINDS = ("semantic_logits", "yolo_seg")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
METADATA_PREFIX = "prodseg."


@dataclass
class ArtifactMetadata:
    """The contract between export and runtime (docs/reference/artifacts.md)."""

    arch: str
    class_names: list[str]
    class_colors: list[list[int]]
    input_size: list[int]  # [height, width]
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # on 0..1 RGB
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    output_kind: str = "semantic_logits"
    precision: str = "fp32"
    source_checkpoint_sha256: str = ""
    prodseg_version: str = ""
    # Letterbox (keep aspect, pad) vs plain resize; YOLO models are trained letterboxed.
    resize: str = "resize"
    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_det: int = 300  # YOLO-seg: most instances kept per frame after NMS
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.output_kind not in OUTPUT_KINDS:
            raise BadInput(
                f"metadata: output_kind '{self.output_kind}' is not one of {', '.join(OUTPUT_KINDS)}"
            )
        if self.precision not in PRECISIONS:
            raise BadInput(f"metadata: precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        if len(self.input_size) != 2:
            raise BadInput(f"metadata: input_size must be [height, width], got {self.input_size}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_props(self) -> dict[str, str]:
        """Flat string map for ONNX metadata_props: `prodseg.<field>` -> JSON value."""
        return {METADATA_PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "artifact") -> ArtifactMetadata:
        values = {k[len(METADATA_PREFIX) :]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
        if not values:
            raise BadInput(f"{source}: has no prodseg metadata; export it with prodseg-export")
        try:
            return cls.from_dict({k: json.loads(v) for k, v in values.items()}, source)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{source}: prodseg metadata is not valid JSON ({exc})") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "artifact") -> ArtifactMetadata:
        known = {f.name for f in fields(cls)}
        required = ("arch", "class_names", "class_colors", "input_size")
        missing = [name for name in required if name not in d]
        if missing:
            raise BadInput(f"{source}: prodseg metadata lacks {', '.join(missing)}; re-export the artifact")
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_precision(self, precision: str) -> ArtifactMetadata:
        return ArtifactMetadata(**{**asdict(self), "precision": precision})


def sidecar_path(artifact: str | Path) -> Path:
    """The JSON sidecar of an IR or engine: `model.xml` -> `model.json`, `model.engine` -> `model.json`."""
    return Path(artifact).with_suffix(".json")


def write_sidecar(artifact: str | Path, meta: ArtifactMetadata) -> Path:
    from prodseg.atomic import write_json

    return write_json(sidecar_path(artifact), meta.to_dict())


def read_sidecar(artifact: str | Path) -> ArtifactMetadata:
    path = sidecar_path(artifact)
    if not path.is_file():
        raise BadInput(f"{artifact}: no metadata sidecar {path.name}; export it with prodseg-export")
    try:
        return ArtifactMetadata.from_dict(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: metadata sidecar is not valid JSON ({exc})") from exc


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the artifacts' `source_checkpoint_sha256`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

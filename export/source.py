"""The export source: a checkpoint's SegModel, its config and the metadata every artifact carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodseg import __version__
from prodseg.config import Config
from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata

# ONNX output names per output kind; yolo keeps ultralytics' names so its tools read our files.
OUTPUT_NAMES: dict[str, list[str]] = {
    "semantic_logits": ["logits"],
    "yolo_seg": ["output0", "output1"],
}
INPUT_NAME = "images"


@dataclass
class ExportSource:
    """A loaded checkpoint ready for export."""

    checkpoint: Path
    model: Any  # prodseg.train.models.SegModel
    config: Config
    meta: ArtifactMetadata

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.meta.input_size
        return int(h), int(w)

    @property
    def output_names(self) -> list[str]:
        return OUTPUT_NAMES[self.meta.output_kind]

    def export_module(self) -> Any:
        """The eval-mode torch module whose outputs are exported."""
        return self.model.export_module()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_source(checkpoint: str | Path) -> ExportSource:
    """Load a prodseg checkpoint (BadInput for a missing/corrupt file or an unknown arch)."""
    from prodseg.train.checkpoint import model_from_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise BadInput(f"{path}: checkpoint not found; pass the best.pt/last.pt written by prodseg-train")
    model, cfg, ckpt = model_from_checkpoint(path, device="cpu")
    if model.output_kind not in OUTPUT_NAMES:
        raise BadInput(f"{path}: output kind {model.output_kind!r} cannot be exported; "
                       f"supported: {', '.join(OUTPUT_NAMES)}")
    model.eval()
    return ExportSource(path, model, cfg, build_metadata(model, cfg, ckpt, file_sha256(path)))


def build_metadata(model: Any, cfg: Config, ckpt: dict, sha256: str) -> ArtifactMetadata:
    """FP32 artifact metadata from the model, its config and the checkpoint's class list."""
    names = [str(n) for n in ckpt.get("class_names") or []]
    if len(names) != model.num_classes:
        raise BadInput(f"checkpoint lists {len(names)} class names for a {model.num_classes}-class model; "
                       "re-save it with prodseg-train")
    colors = [[int(c) for c in rgb] for rgb in ckpt.get("class_colors") or []]
    if len(colors) != len(names):
        from prodseg.data.taxonomy import default_colors

        colors = [list(c) for c in default_colors(len(names))]
    return ArtifactMetadata(
        arch=model.arch, class_names=names, class_colors=colors,
        input_size=[int(v) for v in cfg.data.image_size],
        mean=[float(v) for v in model.mean], std=[float(v) for v in model.std],
        output_kind=model.output_kind, precision="fp32", source_checkpoint_sha256=sha256,
        prodseg_version=__version__, resize=getattr(model, "resize", "resize"),
        confidence_threshold=float(cfg.model.confidence_threshold),
        iou_threshold=float(cfg.model.iou_threshold),
    )

"""The export source: a checkpoint's SegModel, its config and the metadata every artifact carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodseg.config import Config
from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata
from prodseg.runtime.facts import OUTPUT_NAMES


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


def load_source(checkpoint: str | Path) -> ExportSource:
    """Load a prodseg checkpoint (BadInput for a missing/corrupt file or an unknown arch)."""
    from prodseg.train.checkpoint import checkpoint_metadata, model_from_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise BadInput(f"{path}: checkpoint not found; pass the best.pt/last.pt written by prodseg-train")
    model, cfg, ckpt = model_from_checkpoint(path, device="cpu")
    if model.output_kind not in OUTPUT_NAMES:
        raise BadInput(
            f"{path}: output kind {model.output_kind!r} cannot be exported; "
            f"supported: {', '.join(OUTPUT_NAMES)}"
        )
    model.eval()
    return ExportSource(path, model, cfg, checkpoint_metadata(model, cfg, ckpt, path))
